"""train.py end to end on a tiny config: stages, checkpoints, exact resume, errors, own data, DDP."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from tests.forkserver import HANG, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n_train=48", "--n_val=12", "--n_test=12", "--vit_n_layer=3", "--vit_n_embd=16", "--vit_n_head=2",
        "--n_layer=2", "--n_embd=16", "--n_head=2", "--block_size=100", "--batch_size=4", "--vit_batch_size=8",
        "--warmup_iters=2", "--eval_scenes=4", "--density=1", "--device='cpu'"]


def train(tmp, *args, out="out", check=True, runner=None):
    """train.py on the tiny config: forked from the test server (tests/forkserver.py), or under runner."""
    cmd = [os.path.join(ROOT, "train.py"), os.path.join(ROOT, "config", "shapes_cpu.py")]
    cmd += TINY + [f"--out_dir={tmp / out}", f"--data_dir={tmp / 'data'}"] + list(args)
    if runner is None:
        r = run(*cmd)
    else:
        r = subprocess.run(runner + cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def losses(path):
    with open(path) as f:
        return [(e["stage"], e["iter"], e["loss"]) for e in map(json.loads, f)]


def test_end_to_end_writes_checkpoint_and_results(tmp_path):
    train(tmp_path, "--vit_iters=20", "--max_iters=20", "--eval_interval=10")
    out = tmp_path / "out"
    assert (out / "ckpt.pt").exists() and (out / "vit.pt").exists()
    res = json.loads((out / "results.json").read_text())
    assert set(res["vqa"]) == {"overall", "colour", "shape", "count", "position", "texture", "absent"}
    assert res["n"]["overall"] == 12 * 5 and res["n"]["absent"] == 12  # 'absent': its own row, not in overall
    assert 0.0 <= res["vqa"]["overall"] <= 1.0
    assert res["caption_f1"] is not None
    assert 0 <= res["paraphrase"]["overall"] <= 1 and 0 <= res["compositional"]["overall"] <= 1  # held-out wordings, pairs
    ck = torch.load(out / "ckpt.pt", weights_only=True)
    assert ck["stage"] == "tune" and ck["iter"] == 20 and "optimizer" in ck and "sampler" in ck["rng"]
    assert ck["threads"] == 1  # OMP_NUM_THREADS=1 (tests/forkserver.py): a resume goes on with it
    log = losses(out / "log.jsonl")
    assert [i for s, i, _ in log if s == "vit"] == list(range(20))
    assert [i for s, i, _ in log if s == "tune"] == list(range(20))
    assert log[-1][2] < log[20][2]  # the tune loss went down


def test_resume_gives_the_same_losses(tmp_path):
    common = ["--vit_iters=6", "--eval_interval=5", "--lr_decay_iters=10", "--curriculum_frac=0.5"]
    train(tmp_path, *common, "--max_iters=10", out="straight")
    train(tmp_path, *common, "--max_iters=5", out="split")          # stops after step 5 ...
    r = train(tmp_path, *common, "--max_iters=10", "--init_from='resume'", out="split")  # ... and goes on
    assert "resuming tune at step 5" in r.stdout
    assert losses(tmp_path / "straight" / "log.jsonl") == losses(tmp_path / "split" / "log.jsonl")


BUSY_START = """
import json, runpy, sys
import machine, sparsecut, data.batches
real_draw, real_flops, real_peak = data.batches.Examples.draw, sparsecut.SparseCut.estimate_flops, machine.measure_peak_flops
drawn, charged, peaks = [], [], []
def draw(self, *a, **k):  # the text length of each batch the steps run
    out = real_draw(self, *a, **k)
    drawn.append(out[0].shape[1])
    return out
def flops(self, text_len):
    charged.append(text_len)
    return real_flops(self, text_len)
def peak(*a, **k):  # the start reads 1000x low, as beside another job
    peaks.append(1)
    return real_peak(*a, **k) / (1000 if len(peaks) == 1 else 1)
data.batches.Examples.draw, sparsecut.SparseCut.estimate_flops = draw, flops
machine.measure_peak_flops = peak
sys.argv[0] = "train.py"
try:
    runpy.run_path("train.py", run_name="__main__")
finally:
    json.dump({"drawn": drawn, "charged": charged}, open(sys.argv[-1].split("=", 1)[1] + ".json", "w"))
"""


def test_mfu_after_a_busy_start_and_each_step_charged_what_it_ran(tmp_path):
    """A peak measured low (a busy start) never makes MFU read above 100%; a packed step is charged
    its rows' own length (with its caption or not), not the longest row's."""
    (tmp_path / "busy_start.py").write_text(BUSY_START)
    cmd = [str(tmp_path / "busy_start.py"), os.path.join(ROOT, "config", "shapes_cpu.py")] + TINY
    r = run(*cmd, f"--data_dir={tmp_path / 'data'}", "--vit_iters=4", "--max_iters=12", "--eval_interval=100",
            "--caption_frac=0.5", f"--out_dir={tmp_path / 'out'}")
    assert r.returncode == 0, r.stderr[-3000:]
    mfu = [float(m) for m in re.findall(r"mfu=([0-9.]+)%", r.stderr)]
    assert mfu and max(mfu) <= 100.0 and "matmul peak measured again" in r.stdout
    got = json.loads((tmp_path / "out.json").read_text())
    assert [t for t in got["charged"] if t] == got["drawn"] and len(set(got["drawn"])) > 1


def test_a_checkpoint_from_before_a_setting_resumes_as_the_model_it_was(tmp_path):
    """A checkpoint written before GPTConfig had `gelu` holds no such key: it is the tanh model,
    so it resumes with gelu='tanh' and is refused with 'exact' (another model)."""
    common = ["--vit_iters=4", "--eval_interval=5", "--lr_decay_iters=10", "--gelu='tanh'"]
    train(tmp_path, *common, "--max_iters=5")
    path = tmp_path / "out" / "ckpt.pt"
    ck = torch.load(path, weights_only=False)
    del ck["model_config"]["llm"]["gelu"]
    torch.save(ck, path)
    r = train(tmp_path, *common, "--max_iters=6", "--init_from='resume'")
    assert "resuming tune at step 5" in r.stdout
    r = train(tmp_path, *common[:-1], "--gelu='exact'", "--max_iters=7", "--init_from='resume'", check=False)
    assert r.returncode != 0 and "trained with another model config" in r.stderr


def test_interrupted_checkpoint_write_keeps_the_old_one(tmp_path, monkeypatch):
    from checkpoint import load_checkpoint, save_checkpoint
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"iter": 1, "w": torch.ones(3)})

    def crash(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"iter": 2, "w": torch.zeros(3)})
    assert load_checkpoint(path)["iter"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # the half-written temporary file is gone
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt is not a readable checkpoint"):
        load_checkpoint(str(tmp_path / "bad.pt"))


def test_configurator_parses_literals_without_running_code():
    from configurator import configure
    cfg = configure({"a": 1, "b": 0.5, "c": "x", "d": [1]}, ["--a=3", "--b=2", "--c=__import__('os')", "--d=[2, 3]"])
    assert cfg == {"a": 3, "b": 2.0, "c": "__import__('os')", "d": [2, 3]}


def test_trains_on_own_llava_data(tmp_path):
    """A tiny LLaVA-format dataset made here: no scene graph, so end to end without stage 0."""
    import numpy as np
    from data.llava import write_llava
    rng = np.random.default_rng(0)
    images = np.zeros((36, 40, 50, 3), dtype=np.uint8)  # any size: the reader resizes and pads
    records = []
    for i in range(36):
        colour = ["red", "green", "blue"][i % 3]
        images[i, :, :, i % 3] = 200 + rng.integers(0, 50)
        records.append({"id": f"img{i}", "turns": [("what colour is the picture?", colour)]})
    write_llava(records, images, str(tmp_path / "train.json"), str(tmp_path / "images"))
    r = train(tmp_path, f"--data='{tmp_path / 'train.json'}'", f"--image_root='{tmp_path / 'images'}'",
              "--vit_iters=0", "--freeze_vit=False", "--max_iters=120", "--eval_interval=120",
              "--caption_frac=0.0", "--eval_fraction=0.25", "--learning_rate=1e-2", "--warmup_iters=5")
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["n"]["overall"] == 9 and res["majority"]["overall"] <= 0.5
    assert res["vqa"]["overall"] >= 0.8, r.stdout[-2000:]  # the answer is the picture's colour: 120 steps learn it (80 did, with another tokenizer)
    bad = train(tmp_path, f"--data='{tmp_path / 'train.json'}'", f"--image_root='{tmp_path / 'nope'}'",
                "--vit_iters=0", "--freeze_vit=False", check=False)
    assert bad.returncode != 0 and "is not a folder" in bad.stderr.strip().splitlines()[-1]


def test_torchrun_two_gloo_processes(tmp_path):
    """Stage 0, align, then end to end (the ViT trains; its blocks above the deepest tap are never
    run) under DDP; on a fresh data_dir only rank 0 generates the data while the other waits."""
    runner = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]  # a free port
    r = train(tmp_path, "--vit_iters=4", "--align_iters=1", "--max_iters=4", "--eval_interval=4", "--freeze_vit=False",
              "--gate=True", "--main_level=1", runner=runner)
    assert r.stdout.count("generated the shapes data") == 1
    log = losses(tmp_path / "out" / "log.jsonl")
    assert [i for s, i, _ in log if s == "tune"] == list(range(4))  # rank 0 logs, once per step
    assert (tmp_path / "out" / "results.json").exists()


def test_stages_chain_through_separate_configs(tmp_path):
    """config/shapes_vit.py -> shapes_align.py -> shapes_tune.py, each a separate run."""
    vit, align, tune = (str(tmp_path / d) for d in ("vit", "align", "tune"))
    tiny = [a for a in TINY] + [f"--data_dir={tmp_path / 'data'}", "--eval_interval=100"]

    def stage(config, *args):
        r = run("train.py", os.path.join("config", config), *tiny, *args)
        assert r.returncode == 0, r.stderr[-2000:]
        return r

    stage("shapes_vit.py", f"--out_dir={vit!r}", "--vit_iters=3")
    assert sorted(f for f in os.listdir(vit) if f != ".lock") == ["log.jsonl", "vit.pt"]
    stage("shapes_align.py", f"--out_dir={align!r}", f"--vit_init={vit + '/vit.pt'!r}", "--align_iters=3")
    assert torch.load(os.path.join(align, "ckpt.pt"), weights_only=True)["stage"] == "align"
    r = stage("shapes_tune.py", f"--out_dir={tune!r}", f"--init_from={align + '/ckpt.pt'!r}", "--max_iters=3")
    assert "initialised from" in r.stdout and "align step 3" in r.stdout
    assert json.loads(open(os.path.join(tune, "results.json")).read())["n"]["overall"] == 12 * 5


def test_gpu_config_builds_its_model(tmp_path):
    """config/shapes_gpu.py, on a CPU with a handful of scenes: data, model and wiring come up."""
    r = run("train.py", "config/shapes_gpu.py", "--device='cpu'", "--compile=False",
            "--n_train=16", "--n_val=4", "--n_test=4", "--vit_iters=0", "--max_iters=0",
            f"--data_dir={str(tmp_path / 'data')!r}", f"--out_dir={str(tmp_path / 'out')!r}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ViT (12 blocks" in r.stdout and "shortcuts=4" in r.stdout and "8 LLM layers" in r.stdout
