"""experiments.py end to end on a tiny config: shared stage 0, the table, resumability, --only."""
import json
import os

import pytest

from tests.forkserver import run
from tests.test_train import TINY


def experiments(tmp, *args):
    # 6 ViT blocks and 4 LLM layers, so that every pattern fits (dense density 4, DeepStack)
    train_args = " ".join(TINY + ["--vit_n_layer=6", "--n_layer=4", "--vit_iters=4", "--eval_interval=100",
                                  f"--data_dir={str(tmp / 'data')!r}"])
    return run("experiments.py", f"--out={str(tmp / 'exp')!r}", "--max_iters=3", f"--train_args={train_args!r}", *args)


def test_experiments_train_each_variant_once_and_tabulate(tmp_path):
    r = experiments(tmp_path, "--only=baseline,gated_dense", "--seeds=[0,1]", "--jobs=2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    exp = tmp_path / "exp"
    assert all((exp / f"vit-s{s}" / "vit.pt").exists() for s in (0, 1)) and (exp / "results.png").exists()
    rows = json.loads((exp / "results.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["baseline", "gated_dense"]
    for row in rows:  # mean and spread over the two seeds
        res = [json.loads((exp / f"{row['name']}-3-s{s}" / "results.json").read_text()) for s in (0, 1)]
        assert all(x["n"]["overall"] == 12 * 5 for x in res)
        accs = [x["vqa"]["overall"] for x in res]
        assert abs(row["acc"]["overall"][0] - sum(accs) / 2) < 1e-9
        assert (row["acc"]["overall"][1] > 0) == (accs[0] != accs[1])
    assert rows[1]["gates"] and "learned gates of gated_dense" in r.stdout
    # every run of a seed started from that seed's one stage-0 ViT
    assert "ViT from" in (exp / "baseline-3-s0.log").read_text()
    assert "each training: 1 thread (--jobs=2" in r.stdout and "1 thread (OMP_NUM_THREADS=1)" in (exp / "baseline-3-s0.log").read_text()
    # resumable: a second call finds every ViT and every run done, and trains nothing
    again = experiments(tmp_path, "--only=baseline", "--seeds=[0,1]", "--markdown=True")
    assert again.returncode == 0 and again.stdout.count("skipped") == 4, again.stdout[-2000:]
    assert "| variant | seeds | colour |" in again.stdout and "\n| baseline | 2 | " in again.stdout
    row = json.loads((exp / "results.json").read_text())["rows"][0]
    assert len(row["paraphrase"]) == 2 and len(row["compositional"]) == 2  # mean and sd, as every column


def test_experiments_reject_unknown_variants(tmp_path):
    r = experiments(tmp_path, "--only=nonsense")
    assert r.returncode != 0 and "unknown --only ['nonsense']" in r.stderr


def test_ctrl_c_stops_the_running_trainings_and_starts_no_other(tmp_path):
    """SIGINT to the sweep alone (the terminal's Ctrl-C also reaches the trainings; a kill does not):
    the running trainings stop, the queued ones never start, and one line says how to continue."""
    import signal, subprocess, sys, time
    launcher = (  # a background job ignores SIGINT: restore it; each training is a stand-in that waits
        "import signal, subprocess, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import runpy\n"
        "real = subprocess.Popen\n"
        "def training(cmd, **kw):\n"
        "    mark = cmd[-1].split('=', 1)[1].strip(\"'\") + '.started'\n"
        "    code = 'import os, sys, time; open(sys.argv[1], \"w\").write(str(os.getpid())); time.sleep(60)'\n"
        "    return real([sys.executable, '-c', code, mark], **kw)\n"
        "subprocess.Popen = training\n"
        "runpy.run_path('experiments.py', run_name='__main__')\n")
    out = tmp_path / "exp"
    p = subprocess.Popen([sys.executable, "-c", launcher, "--only=baseline,concat", "--seeds=[0,1]", "--max_iters=1",
                          "--jobs=2", f"--out={out}", "--plot=''"], stderr=subprocess.PIPE, text=True)
    started = lambda: sorted(f.name for f in tmp_path.rglob("*.started"))
    for _ in range(300):  # both stage-0 trainings (one per seed) running
        if len(started()) == 2 and all((out / f).read_text() for f in started()):
            break
        time.sleep(0.1)
    assert started() == ["vit-s0.started", "vit-s1.started"]
    pids = [int((out / f).read_text()) for f in started()]
    p.send_signal(signal.SIGINT)
    try:
        err = p.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    assert p.returncode != 0 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("experiments.py: interrupted; the same command continues")
    for pid in pids:  # stopped and reaped: no training left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    time.sleep(1)
    assert started() == ["vit-s0.started", "vit-s1.started"]  # no variant run started after it
    assert not (out / "vit-s0" / "DONE").exists()  # a stage 0 cut off is not marked finished
