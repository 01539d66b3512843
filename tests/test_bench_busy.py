"""bench_busy.py on a tiny piece: times and ratios in its JSON, and no competitor left behind,
also when it is interrupted."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.forkserver import ROOT, run
from tests.test_train import TINY

PIECE = " ".join(TINY + ["--vit_iters=2", "--max_iters=3", "--eval_interval=100"])
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds leftover processes in /proc")


def alive(text):
    """Processes whose command line holds text."""
    found = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as f:
                if text.encode() in f.read():
                    found.append(path)
        except OSError:  # gone meanwhile
            pass
    return found


def test_bench_busy_times_each_condition_and_cleans_up(tmp_path):
    path = tmp_path / "busy.json"
    r = run("bench_busy.py", f"--piece={PIECE!r}", "--rounds=1", "--conditions='quiet,loop_nice'",
            f"--out={str(tmp_path / 'b')!r}", f"--json={str(path)!r}", "--env='OMP_NUM_THREADS=1'")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {row["condition"]: row for row in json.loads(path.read_text())["rows"]}
    assert set(rows) == {"quiet", "loop_nice"} and rows["quiet"]["ratio_to_quiet"] == 1.0
    loop = rows["loop_nice"]
    assert loop["ratio_to_quiet"] == pytest.approx(loop["median"] / rows["quiet"]["median"], rel=0.01)  # medians rounded
    assert loop["threads"] == "1 thread (OMP_NUM_THREADS=1)" and 0 < loop["max_mfu_percent"] <= 100
    assert "x quiet" in r.stdout and not alive("bench_busy.py competitor")


def test_bench_busy_stops_everything_on_ctrl_c(tmp_path):
    out = str(tmp_path / "b")
    p = subprocess.Popen([sys.executable, "bench_busy.py", f"--piece={PIECE.replace('--max_iters=3', '--max_iters=3000')!r}",
                          "--conditions='loop'", f"--out={out!r}", "--env='OMP_NUM_THREADS=1'"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    deadline = time.time() + 300
    while time.time() < deadline and not (alive("bench_busy.py competitor") and alive(f"--out_dir={out}/run-this")):
        time.sleep(0.2)  # the data are made, and train.py runs beside the busy loop
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "interrupted" in err.strip().splitlines()[-1]
    assert not alive("bench_busy.py competitor") and not alive(f"--out_dir={out}/run-this")


def test_bench_busy_rejects_unknown_conditions_and_baselines(tmp_path):
    r = run("bench_busy.py", "--conditions='quiet,gpu'")
    assert r.returncode != 0 and "conditions='quiet,gpu': use some of" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("bench_busy.py", f"--baseline={str(tmp_path)!r}")
    assert r.returncode != 0 and "has no train.py" in r.stderr and len(r.stderr.strip().splitlines()) == 1
