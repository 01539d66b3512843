"""Nothing a user finished is ever lost (issue 26): result files written atomically, a run killed
and resumed logs each step once, an earlier run is moved aside (never overwritten), one run per
out_dir, and Ctrl-C, SIGTERM or a full or read-only disk end in one line that says where the last
checkpoint is. Each run is a process of tests/forkserver.py; the kill, the signal and the disk are
stood in for by a few lines that run before train.py (PRELUDES), as the issue allows.
"""
import hashlib
import json
import os

import pytest
import torch

from tests.forkserver import run
from tests.test_train import TINY, losses

# name -> what runs before train.py; `param` is the wrapper's first argument
PRELUDES = {
    # a kill -9 in the middle of writing a file whose name starts with param: half of it is written
    "kill_write": '''
import builtins, signal
real_open = builtins.open
class Killed:
    def __init__(self, f): self.f = f
    def write(self, data):
        self.f.write(data[:len(data) // 2]); self.f.flush(); os.kill(os.getpid(), signal.SIGKILL)
    def __getattr__(self, name): return getattr(self.f, name)
    def __enter__(self): return self
    def __exit__(self, *a): self.f.close()
def opener(path, mode="r", *a, **k):
    f = real_open(path, mode, *a, **k)
    return Killed(f) if os.path.basename(str(path)).startswith(param) and set(mode) & set("wa") else f
builtins.open = opener
''',
    # param 'SIGINT:3': the signal arrives while the 3rd checkpoint is being written (Ctrl-C, kill)
    "signal": '''
import signal, torch
name, n = param.split(":")
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)
real_save, saves = torch.save, []
def save(obj, f, *a, **k):
    saves.append(f)
    if len(saves) == int(n):
        f.write(b"part of a checkpoint")
        os.kill(os.getpid(), getattr(signal, name))  # its handler runs here
    return real_save(obj, f, *a, **k)
torch.save = save
''',
    # the disk is full at the param-th checkpoint: what torch.save then does (its RuntimeError, the OSError its context)
    "full_disk": '''
import errno, torch
real_save, saves = torch.save, []
def save(obj, f, *a, **k):
    saves.append(f)
    if len(saves) < int(param):
        return real_save(obj, f, *a, **k)
    f.write(b"part of a checkpoint")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
torch.save = save
''',
    # the folder param is on a read-only disk (EROFS): nothing in it can be made or written
    "read_only": '''
import builtins, errno
ro, real_open, real_makedirs, real_access = os.path.abspath(param), builtins.open, os.makedirs, os.access
inside = lambda path: (os.path.abspath(str(path)) + os.sep).startswith(ro + os.sep)
def refuse(path):
    if inside(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
def opener(path, mode="r", *a, **k):
    if set(mode) & set("wax+"):
        refuse(path)
    return real_open(path, mode, *a, **k)
def makedirs(path, *a, **k):
    if not os.path.isdir(path):
        refuse(path)
    return real_makedirs(path, *a, **k)
builtins.open, os.makedirs = opener, makedirs
os.access = lambda path, mode, **k: not (mode & os.W_OK and inside(path)) and real_access(path, mode, **k)
''',
}


def train(tmp, out, *args, prelude=None, param=""):
    """train.py on the tiny config (with a prelude: run by a wrapper script in tmp) -> Result."""
    cmd = [os.path.join("config", "shapes_cpu.py")] + TINY + [f"--data_dir={tmp / 'data'}", "--n_train=16", "--n_test=4",
                                                             f"--out_dir={tmp / out}"] + list(args)
    if prelude is None:
        return run("train.py", *cmd)
    wrapper = tmp / f"{prelude}.py"
    wrapper.write_text("import os, runpy, sys\nparam = sys.argv[1]\n" + PRELUDES[prelude] +
                       "sys.argv = ['train.py'] + sys.argv[2:]\nrunpy.run_path('train.py', run_name='__main__')\n")
    return run(str(wrapper), param, *cmd)


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest() if path.exists() else None


def last_line(r):
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return r.stderr.strip().splitlines()[-1]


def one_line(r):
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr[-3000:]
    return last_line(r)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run below, in order, in the one serving process: {name: Result}, and what was on disk between them."""
    from checkpoint import claim_out_dir
    t = tmp_path_factory.mktemp("lost")
    r, disk = {}, {}
    short = ["--vit_iters=2", "--max_iters=2", "--eval_interval=2"]
    # item 1: killed while writing results.json, on a resume of a finished run
    r["finished"] = train(t, "res", *short)
    disk["finished"] = md5(t / "res" / "results.json")
    r["killed_at_results"] = train(t, "res", *short[:1], "--max_iters=3", "--init_from='resume'",
                                   prelude="kill_write", param="results.json")
    # item 2: `python train.py` twice on one out_dir, then a third run reading the second's ViT
    r["first"] = train(t, "twice", *short)
    disk["first"] = {f: md5(t / "twice" / f) for f in ("ckpt.pt", "vit.pt", "results.json", "log.jsonl")}
    r["second"] = train(t, "twice", "--vit_iters=3", "--max_iters=0")
    disk["second"] = {f: md5(t / "twice" / "previous" / f) for f in disk["first"]}
    r["third"] = train(t, "twice", "--vit_iters=0", "--max_iters=1", f"--vit_init={str(t / 'twice' / 'vit.pt')!r}")
    # item 3: a second train.py on an out_dir a running one holds
    (t / "busy").mkdir()
    lock, _ = claim_out_dir(str(t / "busy"), new_run=True)
    r["busy"] = train(t, "busy", *short)
    lock.close()
    # item 4: Ctrl-C mid-checkpoint, resumed, SIGTERM mid-checkpoint, resumed to the end; and straight through
    kill = ["--vit_iters=6", "--max_iters=12", "--eval_interval=4"]
    r["sigint"] = train(t, "kill", *kill, prelude="signal", param="SIGINT:3")        # vit.pt at 4, 6; ckpt.pt at 4
    disk["sigint"] = sorted(os.listdir(t / "kill"))
    r["sigterm"] = train(t, "kill", *kill, "--init_from='resume'", prelude="signal", param="SIGTERM:2")  # at 4, 8
    disk["sigterm"] = sorted(os.listdir(t / "kill"))
    r["resumed"] = train(t, "kill", *kill, "--init_from='resume'")
    r["straight"] = train(t, "straight", *kill)
    r["full_disk"] = train(t, "full", "--vit_iters=0", "--max_iters=2", "--eval_interval=1", prelude="full_disk", param="2")
    (t / "ro").mkdir()
    r["read_only_out_dir"] = train(t, "ro/out", *short, prelude="read_only", param=str(t / "ro"))
    r["read_only_data_dir"] = train(t, "ro_data", *short, f"--data_dir={t / 'ro' / 'data'}", prelude="read_only",
                                    param=str(t / "ro"))
    r["read_only_complete_data"] = train(t, "ro_ok", "--vit_iters=0", "--max_iters=1", prelude="read_only",
                                         param=str(t / "data"))
    return t, r, disk


def test_results_json_killed_mid_write_keeps_the_finished_one(runs):
    """Item 1: kill -9 while results.json is written (a resume of a finished run): the finished
    run's results.json is still there, whole (a direct write left half a file)."""
    t, r, disk = runs
    assert r["finished"].returncode == 0, r["finished"].stderr[-2000:]
    assert r["killed_at_results"].returncode == -9
    assert md5(t / "res" / "results.json") == disk["finished"]
    json.loads((t / "res" / "results.json").read_text())


def test_a_second_run_moves_the_first_aside(runs):
    """Item 2: run twice on one out_dir, the first run is whole in out_dir/previous/, said in one
    line; a third run replaces it with the second (one generation), never mixing two runs."""
    t, r, disk = runs
    for k in ("first", "second", "third"):
        assert r[k].returncode == 0, r[k].stderr[-2000:]
    assert None not in disk["first"].values() and disk["second"] == disk["first"]
    assert sum("held an earlier run: moved to" in line for line in r["second"].stdout.splitlines()) == 1
    previous = t / "twice" / "previous"
    assert sorted(os.listdir(previous)) == ["log.jsonl", "vit.pt"]  # the second run's, and nothing of the first
    assert torch.load(previous / "vit.pt", weights_only=True)["iter"] == 3
    assert f"ViT from {previous / 'vit.pt'}" in r["third"].stdout  # its vit_init was moved: read from there


def test_one_run_per_out_dir(runs):
    """Item 3: a second train.py on an out_dir that a running one holds refuses, in one line."""
    t, r, _ = runs
    assert "another train.py is running in out_dir=" in one_line(r["busy"])
    assert not (t / "busy" / "log.jsonl").exists()


def test_ctrl_c_and_sigterm_say_where_to_resume(runs):
    """Items 1 and 4: Ctrl-C, then SIGTERM, each while a checkpoint is being written: one line
    naming the last checkpoint and --init_from='resume'; the checkpoint being written is dropped
    whole, the previous one stays."""
    t, r, disk = runs
    assert last_line(r["sigint"]) == (f"train.py: interrupted; the last checkpoint is {t / 'kill' / 'vit.pt'}: "
                                      f"continue with --init_from='resume' (and the same settings)")
    assert disk["sigint"] == [".lock", "log.jsonl", "vit.pt"]
    assert f"the last checkpoint is {t / 'kill' / 'ckpt.pt'}: continue with --init_from='resume'" in last_line(r["sigterm"])
    assert disk["sigterm"] == [".lock", "ckpt.pt", "log.jsonl", "vit.pt"]


def test_killed_and_resumed_twice_logs_each_step_once(runs):
    """Item 1: each resume rewrites the log up to its checkpoint, so after two kills mid-checkpoint
    the log (and every loss in it) is the straight run's."""
    t, r, _ = runs
    for k in ("resumed", "straight"):
        assert r[k].returncode == 0, r[k].stderr[-2000:]
    log = losses(t / "kill" / "log.jsonl")
    assert [(s, i) for s, i, _ in log] == [("vit", i) for i in range(6)] + [("tune", i) for i in range(12)]
    assert log == losses(t / "straight" / "log.jsonl")


def test_a_full_disk_says_so_and_keeps_the_checkpoint(runs):
    """Item 4: torch.save on a full disk raised a 19-line RuntimeError that never says 'disk'."""
    t, r, _ = runs
    path = t / "full" / "ckpt.pt"
    assert last_line(r["full_disk"]).startswith(f"train.py: no space left on device writing {path}: ")
    assert f"the last checkpoint is {path}: continue with --init_from='resume'" in last_line(r["full_disk"])
    assert torch.load(path, weights_only=True)["iter"] == 1
    assert sorted(os.listdir(t / "full")) == [".lock", "ckpt.pt", "log.jsonl"]  # no temporary file left


def test_a_read_only_disk_is_one_line(runs):
    """Item 4: out_dir or (to generate the data) data_dir on a read-only disk: one line, before
    any work; complete data on a read-only disk is only read."""
    t, r, _ = runs
    assert f"out_dir='{t / 'ro' / 'out'}' cannot be written: {t / 'ro'} is read-only" in one_line(r["read_only_out_dir"])
    assert (f"data_dir='{t / 'ro' / 'data'}': the shapes data must be generated there but cannot be written "
            f"(Read-only file system" in one_line(r["read_only_data_dir"]))
    assert r["read_only_complete_data"].returncode == 0, r["read_only_complete_data"].stderr[-2000:]


def test_claim_out_dir(tmp_path, monkeypatch):
    """Item 3 in one process: the lock is refused while held and free once released; a killed
    run's temporary files go; an out_dir that cannot be made is a ValueError, not an OSError."""
    import errno
    from checkpoint import claim_out_dir
    out = tmp_path / "out"
    lock, moved = claim_out_dir(str(out), new_run=True)
    with pytest.raises(ValueError, match="another train.py is running"):
        claim_out_dir(str(out), new_run=True)
    lock.close()
    (out / "ckpt.pt.12345.tmp").write_bytes(b"half")
    claim_out_dir(str(out), new_run=False)[0].close()
    assert moved == {} and os.listdir(out) == [".lock"]

    def read_only(path, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", path)
    monkeypatch.setattr(os, "makedirs", read_only)
    with pytest.raises(ValueError, match="cannot be written \\(Read-only file system"):
        claim_out_dir(str(tmp_path / "new"), new_run=True)


def test_claim_out_dir_on_windows_locks_with_msvcrt(tmp_path, monkeypatch):
    """Windows has no fcntl: the lock is msvcrt's, on the first byte of out_dir/.lock, and a held one
    (msvcrt raises EACCES) is the same one-line refusal. msvcrt stands in here as Windows behaves."""
    import errno
    import sys
    import types
    from checkpoint import claim_out_dir
    held = set()

    def locking(fd, mode, nbytes):
        key = os.fstat(fd).st_ino
        if key in held:
            raise PermissionError(errno.EACCES, "Permission denied")
        held.add(key)
    monkeypatch.setitem(sys.modules, "msvcrt", types.SimpleNamespace(locking=locking, LK_NBLCK=2))
    monkeypatch.setattr(os, "name", "nt")
    out = str(tmp_path / "out")
    lock, _ = claim_out_dir(out, new_run=True)
    assert len(held) == 1
    with pytest.raises(ValueError, match="another train.py is running"):
        claim_out_dir(out, new_run=True)
    lock.close()


def test_truncate_log_drops_the_steps_after_the_checkpoint_and_a_cut_line(tmp_path):
    from checkpoint import truncate_log
    log = tmp_path / "log.jsonl"
    lines = [{"stage": s, "iter": i, "loss": 1.0} for s, n in (("vit", 3), ("tune", 4)) for i in range(n)]
    log.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"stage": "tune", "it')
    truncate_log(str(log), "tune", 2)
    assert [(e["stage"], e["iter"]) for e in map(json.loads, log.read_text().splitlines())] == \
        [("vit", 0), ("vit", 1), ("vit", 2), ("tune", 0), ("tune", 1)]


def test_experiments_rerun_an_unreadable_result_and_resume_a_cut_run(tmp_path, monkeypatch, capsys):
    """Items 1 and 2: a results.json cut short (a kill before this issue) is not done: said, and run
    again; a run with a checkpoint continues from it (--init_from='resume'), not from scratch."""
    import experiments
    out = tmp_path / "baseline-3-s0"
    out.mkdir()
    (out / "results.json").write_text('{"vqa": {"overall": 0.')
    (out / "ckpt.pt").write_bytes(b"")
    commands = []

    class TrainPy:
        def __init__(self, cmd, **kw):
            commands.append(cmd)
            (out / "results.json").write_text('{"vqa": {"overall": 0.5}}')

        def wait(self):
            return 0
    monkeypatch.setattr(experiments.subprocess, "Popen", TrainPy)
    assert experiments.run(str(out), {"fusion": "mlp"}, str(tmp_path / "log")) == {"vqa": {"overall": 0.5}}
    assert "results.json is unreadable (JSONDecodeError): running it again" in capsys.readouterr().out
    assert len(commands) == 1 and commands[0][-1] == "--init_from='resume'"
    assert experiments.run(str(out), {"fusion": "mlp"}, str(tmp_path / "log")) == {"vqa": {"overall": 0.5}}
    assert len(commands) == 1  # done: skipped


def test_a_refused_run_leaves_no_folder(tmp_path):
    """A folder claimed and left empty (a setting refused after the claim) goes at exit; one that
    holds a file, or that was there before, stays."""
    import subprocess, sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    claim = "import sys; from checkpoint import claim_out_dir; lock = claim_out_dir(sys.argv[1], True)[0]; "
    for name, then in (("refused", "sys.exit('refused')"), ("wrote", "open(sys.argv[1] + '/log.jsonl', 'w')")):
        subprocess.run([sys.executable, "-c", claim + then, str(tmp_path / name)], cwd=root, check=name == "wrote")
    (tmp_path / "there").mkdir()
    subprocess.run([sys.executable, "-c", claim + "sys.exit('refused')", str(tmp_path / "there")], cwd=root)
    assert sorted(os.listdir(tmp_path)) == ["there", "wrote"]
    assert sorted(os.listdir(tmp_path / "wrote")) == [".lock", "log.jsonl"]
