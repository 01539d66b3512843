"""machine.py: threads chosen by what is free (and why, in one line), a resume keeps its own, and
an MFU that never reads above 100% even when the peak was measured on a busy machine."""
import pytest
import torch

import machine


@pytest.fixture(autouse=True)
def keep_threads(monkeypatch):
    n = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(n)


def test_busy_counts_other_work_but_not_niced_or_idle_time(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 100 0 0 900 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\nintr 1 2\n")
    before = machine.cpu_times(str(stat))
    assert before == {0: [100, 0, 0, 900, 0, 0, 0, 0], 1: [0] * 8}
    #              user nice system idle iowait irq softirq steal
    after = {0: [150, 0, 50, 900, 0, 0, 0, 0],    # cpu 0: busy all along (user + system)
             1: [10, 60, 0, 20, 10, 0, 0, 0]}     # cpu 1: a niced job, idle, waiting on disk, a little work
    assert machine.busy_between(before, after, [0, 1]) == pytest.approx(1.1)
    assert machine.busy_between(before, after, [1]) == pytest.approx(0.1)  # only the CPUs we may use


def test_threads_are_the_default_less_what_is_busy_and_at_least_one():
    assert machine.free_threads(2, 0.1, 2) == 2     # quiet
    assert machine.free_threads(2, 1.0, 2) == 1     # a busy loop beside
    assert machine.free_threads(2, 2.0, 2) == 1     # a two-thread job beside: still one
    assert machine.free_threads(4, 4.0, 8) == 2     # 8 logical CPUs, torch's default 4 (one per core)
    assert machine.free_threads(2, -0.2, 2) == 2    # never more than torch's default


def test_use_threads_says_how_many_and_why(monkeypatch, tmp_path):
    said = []
    monkeypatch.setattr(machine, "choose_threads", lambda: (1, "1.0 of 2 cores busy with other work at start"))
    assert machine.use_threads(None, "x.py", said.append) == 1 and torch.get_num_threads() == 1
    assert said[-1] == "1 thread (1.0 of 2 cores busy with other work at start; --threads=N to choose)"
    assert machine.use_threads(2, "x.py", said.append) == 2 and torch.get_num_threads() == 2
    assert said[-1] == "2 threads (--threads=2)"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)  # what torch made of it at import
    monkeypatch.setattr(machine, "choose_threads", None)  # OMP_NUM_THREADS decides: nothing is measured
    assert machine.use_threads(None, "x.py", said.append) == 2 and said[-1] == "2 threads (OMP_NUM_THREADS=2)"
    for bad in (0, -1, 1.5, "two"):
        with pytest.raises(SystemExit) as e:
            machine.use_threads(bad, "x.py", said.append)
        assert str(e.value).startswith(f"x.py: threads={bad!r} must be") and "\n" not in str(e.value)


def test_a_resume_keeps_the_thread_count_it_started_with(monkeypatch, tmp_path):
    said = []
    monkeypatch.setattr(machine, "choose_threads", lambda: (1, "2.0 of 2 cores busy with other work at start"))
    torch.save({"threads": 2, "model": {"w": torch.zeros(3)}}, tmp_path / "vit.pt")  # stage 0 cut off
    assert machine.use_threads(None, "train.py", said.append, resume=str(tmp_path)) == 2
    assert torch.get_num_threads() == 2 and "2 threads (as this run started with" in said[-1]
    assert "now 1 would be used: 2.0 of 2 cores busy" in said[-1]
    torch.save({"threads": 1}, tmp_path / "ckpt.pt")  # ckpt.pt first, as train.py resumes
    assert machine.use_threads(None, "train.py", said.append, resume=str(tmp_path)) == 1 and "started" not in said[-1]
    assert machine.use_threads(2, "train.py", said.append, resume=str(tmp_path)) == 2  # --threads wins
    (tmp_path / "ckpt.pt").write_bytes(b"junk")  # unreadable: chosen anew (train.py then says what is wrong)
    assert machine.use_threads(None, "train.py", said.append, resume=str(tmp_path)) == 1


def test_mfu_never_reads_above_100_percent_after_a_busy_start(monkeypatch):
    calls, said = [], []
    real = machine.measure_peak_flops

    def busy_start(*args, **kw):  # the start reads 1000x low, as beside another job
        calls.append(kw)
        return real(*args, **kw) / (1000 if len(calls) == 1 else 1)

    monkeypatch.setattr(machine, "measure_peak_flops", busy_start)
    torch.manual_seed(0)
    peak = machine.Peak("cpu", 256, 32, said.append)
    low = peak.flops
    state = torch.get_rng_state()
    step = 1e3 * low  # a step that ran 1000x the peak measured at start, in one second
    assert peak.mfu(step, 1.0) <= 1.0 and len(calls) == 2 and peak.flops >= step
    assert "matmul peak measured again" in said[-1]
    assert torch.equal(torch.get_rng_state(), state)  # measuring again leaves the run's RNG alone
    faster = 2 * peak.flops  # beaten again within a minute: no new measure, the step itself is the peak
    assert peak.mfu(faster, 1.0) == 1.0 and len(calls) == 2 and peak.flops == faster
    assert 0 < peak.mfu(faster / 4, 1.0) == pytest.approx(0.25)
