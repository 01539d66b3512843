"""Your own data in one command: train.py with only --data and --image_root (and sizes to keep it
tiny) takes config/own_cpu.py, pretrains the ViT label-free (no scene graph) and evaluates."""
import json

import numpy as np

from tests.forkserver import run
TINY = ["--vit_n_layer=3", "--vit_n_embd=16", "--vit_n_head=2", "--n_layer=2", "--n_embd=16", "--n_head=2",
        "--block_size=100", "--batch_size=8", "--vit_batch_size=8", "--warmup_iters=5", "--eval_scenes=8",
        "--density=1", "--device='cpu'", "--vit_iters=30", "--max_iters=40", "--eval_interval=40",
        "--learning_rate=1e-2", "--eval_fraction=0.25"]


def test_default_path_pretrains_label_free_and_evaluates(tmp_path):
    from data.llava import write_llava
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (40, 48, 40, 3)).astype(np.uint8)  # any size: the reader resizes and pads
    records = []
    for i in range(40):
        colour, side = i % 3, ("left", "right")[i // 3 % 2]
        x0 = 2 if side == "left" else 22
        images[i, 16:32, x0:x0 + 16, colour] = 230
        records.append({"id": f"img{i}", "turns": [("what colour is the square?", ["red", "green", "blue"][colour]),
                                                   ("which side is it on?", side)]})
    write_llava(records, images, str(tmp_path / "train.json"), str(tmp_path / "images"))
    r = run("train.py", f"--data={str(tmp_path / 'train.json')!r}", f"--image_root={str(tmp_path / 'images')!r}",
            f"--out_dir={str(tmp_path / 'out')!r}", *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stage 0: no scene graphs in this data, so the ViT pretrains label-free" in r.stdout
    log = [json.loads(line) for line in open(tmp_path / "out" / "log.jsonl")]
    vit = [e["loss"] for e in log if e["stage"] == "vit"]
    assert len(vit) == 30 and vit[-1] < 0.7 * vit[0]                 # the pixel loss fell
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["vqa"]) == {"overall", "what colour", "which side"} and res["n"]["overall"] == 20
    tune = [e["loss"] for e in log if e["stage"] == "tune"]
    assert len(tune) == 40 and sum(tune[-5:]) < sum(tune[:5])        # and the text stage learns on top
