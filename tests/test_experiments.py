"""experiments.py end to end on a tiny config: shared stage 0, the table, resumability, --only."""
import json
import os
import subprocess
import sys

from tests.test_train import TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def experiments(tmp, *args):
    # 6 ViT blocks and 4 LLM layers, so that every pattern fits (dense density 4, DeepStack)
    train_args = " ".join(TINY + ["--vit_n_layer=6", "--n_layer=4", "--vit_iters=4", "--eval_interval=100",
                                  f"--data_dir={str(tmp / 'data')!r}"])
    cmd = [sys.executable, "experiments.py", f"--out={str(tmp / 'exp')!r}", "--max_iters=3",
           f"--train_args={train_args!r}"] + list(args)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_experiments_train_each_variant_once_and_tabulate(tmp_path):
    r = experiments(tmp_path, "--only=baseline,naive,gated_dense")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    exp = tmp_path / "exp"
    assert (exp / "vit-s0" / "vit.pt").exists() and (exp / "results.png").exists()
    rows = json.loads((exp / "results.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["baseline", "naive", "gated_dense"]
    for row in rows:
        res = json.loads((exp / f"{row['name']}-3-s0" / "results.json").read_text())
        assert res["n"]["overall"] == 12 * 5 and row["acc"]["overall"] == [res["vqa"]["overall"], 0.0]
    assert rows[2]["gates"] and "learned gates of gated_dense" in r.stdout
    # every run started from the one shared stage-0 ViT
    assert "ViT from" in (exp / "baseline-3-s0.log").read_text()
    # resumable: a second call trains only what is new (seed 1), and averages over the seeds
    again = experiments(tmp_path, "--only=baseline", "--seeds=[0,1]", "--jobs=2")
    assert again.returncode == 0 and again.stdout.count("skipped") == 2  # seed 0: its ViT and its run
    row = json.loads((exp / "results.json").read_text())["rows"][0]
    both = [json.loads((exp / f"baseline-3-s{s}" / "results.json").read_text())["vqa"]["overall"] for s in (0, 1)]
    assert abs(row["acc"]["overall"][0] - sum(both) / 2) < 1e-9


def test_experiments_reject_unknown_variants(tmp_path):
    r = experiments(tmp_path, "--only=nonsense")
    assert r.returncode != 0 and "unknown --only ['nonsense']" in r.stderr
