"""probe.py: object tokens and their labels, var_share, a level that is the input patches, the script
and its picture."""
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from PIL import Image

from checkpoint import save_checkpoint
from data.shapes.prepare import make_split
from data.tokenizer import get_tokenizer
from drawing import LEVELS_SIZE
from llm import GPTConfig
import probe as probe_py
from probe import PROBES, labels, owners, probe_levels, var_share
from sparsecut import SparseCut, SparseCutConfig
from tests.forkserver import run
from tests.test_train import ROOT
from vit import ViT, ViTConfig

KEYS = {f"{view}/{a}" for view, attributes in PROBES.items() for a in attributes}


def probe(*args):
    return run("probe.py", *args)


def test_an_object_token_is_at_least_half_one_object():
    masks = np.zeros((1, 16, 16), dtype=np.uint8)  # 2 tokens a side: 8 px in the low view, 4 px in a crop
    masks[0, :8, :8] = 1       # object 0 fills low token 0 and the whole top-left crop
    masks[0, :8, 8:12] = 2     # object 1: exactly half of low token 1, all of two top-right crop tokens
    masks[0, 8:10, 8:16] = 2   # a quarter of low token 3 (not enough), half of two bottom-right crop tokens
    owner = owners(masks, n_side=2)
    assert owner[0, 0].tolist() == [1, 2, 0, 0]
    assert owner[0, 1].tolist() == [1, 1, 1, 1] and owner[0, 2].tolist() == [2, 0, 2, 0]
    assert owner[0, 3].sum() == 0 and owner[0, 4].tolist() == [2, 2, 0, 0]
    records = [{"objects": [{"colour": "red", "shape": "circle", "texture": "solid", "position": "top left"},
                            {"colour": "blue", "shape": "cross", "texture": "dotted", "position": "top right"}]}]
    y = labels(owner, records)
    assert y["colour"][0, 0].tolist() == [0, 2, -1, -1] and y["shape"][0, 2].tolist() == [3, -1, 3, -1]
    assert y["position"][0, 0].tolist() == [0, 2, -1, -1] and y["texture"][0, 2].tolist() == [3, -1, 3, -1]


def test_var_share_is_one_for_the_label_zero_for_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(4, (4000,), generator=g)
    onehot, noise = F.one_hot(y).float(), torch.randn(4000, 4, generator=g)
    assert var_share(onehot, y) == pytest.approx(1.0)
    assert var_share(noise, y) < 0.01
    # one-hot of 4 balanced classes: variance 4 * 1/4 * 3/4 = 0.75 next to the noise's 4
    assert var_share(torch.cat([onehot, noise], 1), y) == pytest.approx(0.75 / 4.75, abs=0.02)


def test_a_level_that_is_the_patch_pixels_knows_the_colour():
    vit = ViT(ViTConfig(image_size=24, patch_size=4, n_layer=1, n_head=4, n_embd=48))
    with torch.no_grad():  # 'embed' = the centred pixels of each patch, nothing else
        vit.patch_embed.weight.copy_(torch.eye(48))
        vit.patch_embed.bias.zero_()
        vit.pos_embed.zero_()
    train = make_split("train", 100, max_objects=2, image_size=48)
    test = make_split("val", 40, max_objects=2, image_size=48)
    results, chance = probe_levels(probe_py.object_tokens(vit, train, test, depth=1), steps=20)
    assert set(results) == {"embed", "0"} and set(chance) == KEYS
    assert results["embed"]["low/colour"]["acc"] == 1.0
    assert results["embed"]["low/colour"]["var_share"] > 0.3 and chance["low/colour"] < 0.5
    for r in results.values():
        assert all(0.0 <= v["var_share"] <= 1.0 and 0.0 <= v["acc"] <= 1.0 for v in r.values())


def test_script_on_a_tiny_checkpoint_writes_the_json(tmp_path):
    cfg = SparseCutConfig(vit=ViTConfig(image_size=24, patch_size=4, n_layer=3, n_head=2, n_embd=16),
                          llm=GPTConfig(block_size=100, vocab_size=get_tokenizer().n_vocab, n_layer=1, n_head=2, n_embd=16), fusion="mlp", shortcut="none")
    torch.manual_seed(0)
    save_checkpoint(str(tmp_path / "vit.pt"), {"model": SparseCut(cfg).state_dict(), "model_config": asdict(cfg),
                                               "config": {"min_objects": 1, "max_objects": 2, "image_size": 48,
                                                          "patch_size": 4}})
    r = probe(f"--ckpt={tmp_path / 'vit.pt'}", f"--data_dir={tmp_path / 'no_data'}", "--n_train=20", "--n_test=10",
              "--steps=10", f"--json={tmp_path / 'probe.json'}", "--llm=True",
              f"--plot={tmp_path / 'pic' / 'probe.png'}")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "pic" / "probe.png") as im:
        assert im.size == LEVELS_SIZE
        drawn = np.asarray(im)
    # the picture again from the JSON alone, and from one without the chance levels (as results/ holds):
    # they are recomputed from the scenes' labels, so the picture is the same to the pixel
    again = probe(f"--from_json={tmp_path / 'probe.json'}", f"--plot={tmp_path / 'again.png'}")
    saved = json.loads((tmp_path / "probe.json").read_text())
    (tmp_path / "old.json").write_text(json.dumps({k: v for k, v in saved.items() if k != "chance"}))
    old = probe(f"--from_json={tmp_path / 'old.json'}", f"--plot={tmp_path / 'old.png'}")
    assert again.returncode == 0 and old.returncode == 0, again.stderr + old.stderr
    assert "recomputed" in old.stdout and "recomputed" not in again.stdout
    for name in ("again.png", "old.png"):
        with Image.open(tmp_path / name) as im:
            assert np.array_equal(np.asarray(im), drawn), name
    assert "generated in memory" in r.stdout and "chance" in r.stdout and "1 main" in r.stdout
    out = json.loads((tmp_path / "probe.json").read_text())
    levels = out["levels"]
    assert set(levels) == {"embed", "0", "1"}  # up to the main level: -2 of 3 blocks
    # --llm: the LLM's stream at the image positions, before its one layer and after it
    assert set(out["llm"]) == {"in 0", "out"} and set(out["llm"]["out"]) == {"image/colour", "image/texture"}
    # ... and the answer loss's pull on each path into the LLM (here the prefix alone)
    assert set(out["grads"]) == {"colour", "texture"}
    for paths in out["grads"].values():
        assert list(paths) == ["prefix (block 1)"] and paths["prefix (block 1)"]["grad_rms"] > 0
    for r in levels.values():
        assert set(r) == KEYS
        assert all(set(v) == {"acc", "var_share"} and all(type(x) is float for x in v.values()) for v in r.values())


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    r = probe(f"--ckpt={tmp_path / 'no' / 'vit.pt'}")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("probe.py: ") and "not found" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--ckpt=README.md"], "not a readable checkpoint"),
    (["--ckpt={tmp}/other.pt"], "does not hold a SparseCut ViT"),
    (["--split=train"], "not held out"),
    (["--n_trian=5"], "unknown config key 'n_trian'"),
    (["--plot={tmp}/probe.txt"], "unknown image extension '.txt'"),   # before the checkpoint is looked for
    (["--plot={tmp}/other.pt/probe.png"], "other.pt is a file"),
    (["--from_json=README.md", "--plot={tmp}/p.png"], "is not a probe.py JSON"),
    (["--from_json=results/probe_main.json"], "give --plot=probe.png too"),
])
def test_bad_inputs_exit_with_the_reason(args, message, tmp_path, monkeypatch):
    monkeypatch.setattr(probe_py, "config", dict(probe_py.config))  # main() edits its config in place
    monkeypatch.chdir(ROOT)
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(SystemExit) as e:
        probe_py.main([a.format(tmp=tmp_path) for a in args])
    assert str(e.value.code).startswith("probe.py: ") and message in str(e.value.code) and "\n" not in str(e.value.code)


def test_fitting_on_the_scored_split_uses_other_scenes_of_it(tmp_path):
    c = {"data_dir": str(tmp_path / "none"), "split": "compositional", "fit_split": "compositional",
         "n_train": 6, "n_test": 4}
    train, test, _ = probe_py.probe_data(c, {"min_objects": 1, "max_objects": 2}, 32)
    assert len(train[2]) == 6 and len(test[2]) == 4
    ids = [r["id"] for r in train[2] + test[2]]
    assert ids == [f"compositional-{i:05d}" for i in range(10)]  # the first 6 fit, the 4 after them score
    with pytest.raises(ValueError, match="fit_split"):
        probe_py.probe_data(dict(c, fit_split="val"), {}, 32)


def test_unseen_pairs_sort_the_compositional_tokens_by_what_is_new(monkeypatch):
    """Every object token of the compositional scenes is scored in the group of its object: a new
    colour-shape pair (a red circle), only a new texture-shape pair (a striped blue circle), or neither."""
    from data.shapes.render import HELD_OUT_PAIRS
    vit = ViT(ViTConfig(image_size=24, patch_size=4, n_layer=1, n_head=2, n_embd=16))
    train, test = make_split("train", 20, image_size=48), make_split("compositional", 30, max_objects=3, image_size=48)
    monkeypatch.setattr(probe_py, "fit_probe", lambda x, y, x_test, y_test, *args: len(y_test))  # count, not fit
    got = probe_py.by_unseen_pair(probe_py.object_tokens(vit, train, test, depth=1), level=0)
    want = {view: {"colour pair new": 0, "only texture pair new": 0, "neither": 0} for view in PROBES}
    for i, views in enumerate(owners(test[1], 6)):
        for v, tokens in enumerate(views):
            for k in tokens[tokens > 0]:
                o = test[2][i]["objects"][k - 1]
                new = {a for a in ("colour", "texture") if (o["shape"], o[a]) in HELD_OUT_PAIRS}
                kind = "colour pair new" if "colour" in new else "only texture pair new" if new else "neither"
                want["low" if v == 0 else "crops"][kind] += 1
    assert got == want and all(n > 0 for r in want.values() for n in r.values())
    one = make_split("compositional", 1, max_objects=1, image_size=48)  # one object: two groups are empty
    tokens = probe_py.object_tokens(vit, train, one, depth=1)
    assert list(probe_py.by_unseen_pair(tokens, level=0)["low"].values()).count(None) == 2  # not a NaN
