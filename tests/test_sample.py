"""sample.py on an image file, on a dataset scene, and on bad inputs; --explain."""
import numpy as np
import pytest
from PIL import Image

from tests.forkserver import run


def sample(*args):
    return run("sample.py", *args)


def test_sample_on_an_image_file(trained, tmp_path):
    img = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(img)
    r = sample(f"--out_dir={trained / 'out'}", f"--image={img}", "--question=what colour is the object in the centre?",
               f"--save={tmp_path / 'new_dir' / 'answer.png'}", "--num_samples=2", "--temperature=1.0", "--top_k=5")
    assert r.returncode == 0, r.stderr
    assert "ViT block" in r.stdout and "Q: what colour is the object in the centre? A:" in r.stdout
    assert r.stdout.count("  -> ") == 2
    with Image.open(tmp_path / "new_dir" / "answer.png") as im:
        assert im.width > 2 * 64 and im.height > 64


def test_sample_on_a_dataset_scene(trained):
    r = sample(f"--out_dir={trained / 'out'}", "--split=test", "--index=3")
    assert r.returncode == 0, r.stderr
    assert "scene test-00003" in r.stdout and "Q: describe the image. A:" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--image=/no/such.png"], "image not found"),
    (["--image=README.md"], "not a readable image"),
    (["--split=test", "--index=999"], "out of range"),
    (["--split=test", "--question=" + "what " * 80], "ask a shorter question"),
    ([], "nothing to look at"),
    (["--temprature=1"], "unknown config key 'temprature'"),
    (["--split=test", "--explain=True", "--num_samples=2"], "--explain scores the greedy answer"),
])
def test_bad_inputs_are_clear_errors(trained, args, message):
    r = sample(f"--out_dir={trained / 'out'}", *args)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1], r.stderr


def test_missing_or_corrupt_checkpoint(tmp_path):
    r = sample(f"--out_dir={tmp_path}", "--split=test")
    assert r.returncode != 0 and "not found" in r.stderr.strip().splitlines()[-1]
    (tmp_path / "ckpt.pt").write_bytes(b"\x00" * 100)
    r = sample(f"--out_dir={tmp_path}", "--split=test")
    assert r.returncode != 0 and "not a readable checkpoint" in r.stderr.strip().splitlines()[-1]


def test_missing_data_is_generated_from_the_checkpoint_settings(trained, tmp_path):
    import torch
    from data.shapes.prepare import load_split
    ck = torch.load(trained / "out" / "ckpt.pt", weights_only=False)
    ck["config"]["data_dir"] = str(tmp_path / "gone")  # as after a fresh clone: the data were never made here
    (tmp_path / "out").mkdir()
    torch.save(ck, tmp_path / "out" / "ckpt.pt")
    r = sample(f"--out_dir={tmp_path / 'out'}", "--split=test", "--index=3")
    assert r.returncode == 0, r.stderr
    assert "generated the scene" in r.stdout and "--n_train=48" in r.stdout  # the model's own settings
    tested = load_split(trained / "data", "test")[2][3]  # the very scene the model was tested on
    assert f"scene test-00003: {tested['caption']}" in r.stdout.splitlines()
    assert f"Q: {tested['qa'][0]['question']} A:" in r.stdout
    assert not (tmp_path / "gone").exists()


def test_explain_prints_each_path_and_draws_the_bars(trained, tmp_path):
    plain = sample(f"--out_dir={trained / 'out'}", "--split=test", "--index=3", f"--save={tmp_path / 'plain.png'}")
    r = sample(f"--out_dir={trained / 'out'}", "--split=test", "--index=3", "--explain=True",
               f"--save={tmp_path / 'why.png'}")
    assert plain.returncode == 0 and r.returncode == 0, plain.stderr + r.stderr
    assert "p(answer): the product of the probabilities of the full model's answer tokens [" in r.stdout
    table = r.stdout.split("teacher-forced\n")[1].splitlines()
    assert table[0].split() == ["removed", "p(answer)", "answer", "then"]
    # the tiny model: one shortcut, from ViT block 0; one question (the scene's first), not all of them
    assert [line.split()[0] for line in table[1:5]] == ["full", "shortcut:0", "shortcuts", "crops"]
    assert all(0 < float(line.split()[1 + (i == 0)]) <= 1 for i, line in enumerate(table[1:5]))
    assert r.stdout.count("Q: ") == 1
    with Image.open(tmp_path / "plain.png") as a, Image.open(tmp_path / "why.png") as b:
        assert b.height == a.height and b.width > a.width + 4 * 80  # a bar per row beside the image


def test_explain_sees_the_answer_leave_with_the_shortcut_that_carries_it():
    """A model whose prefix is blind (its fusion's output zeroed): the image reaches the LLM by the
    shortcut alone, so removing it must change the answer's probability, and removing the crops
    (which that fusion reads) too."""
    import torch
    from data.prompt import vqa_prompt
    from data.tokenizer import get_tokenizer
    from sample import explain_answer
    from sparsecut import SparseCut, SparseCutConfig
    from tests.test_sparsecut import lively
    tok = get_tokenizer()
    torch.manual_seed(0)
    model = lively(SparseCut(SparseCutConfig(
        vit=dict(image_size=8, patch_size=4, n_layer=3, n_head=2, n_embd=16),
        llm=dict(block_size=64, vocab_size=tok.n_vocab, n_layer=2, n_head=2, n_embd=16),
        fusion="concat", pairs=[(0, 1)], shared_fusion=False)).eval(), 3.0)
    with torch.no_grad():
        model.fusion.mlp[-1].weight.zero_()  # the prefix: the same zeros for every image
        model.fusion.mlp[-1].bias.zero_()
    x, ids = torch.rand(1, 3, 16, 16), tok.encode_ordinary(vqa_prompt("what colour is it?"))
    rows, scored = explain_answer(model, tok, x, ids, 4)
    assert [r[0] for r in rows] == ["full model", "shortcut:0", "shortcuts", "crops"]
    p = {removed: p for removed, p, _ in rows}
    assert 0 < p["full model"] <= 1 and p["shortcut:0"] == p["shortcuts"]
    assert abs(p["shortcut:0"] - p["full model"]) > 1e-3 * p["full model"]
    assert abs(p["crops"] - p["full model"]) > 1e-3 * p["full model"]
    assert rows[0][2] == tok.decode([t for t in scored if t != tok.eot_token]).strip()
    # as built: without the shortcut no image reaches the LLM (another image, the same logits)
    with torch.no_grad():
        blind = [model(torch.rand(1, 3, 16, 16), torch.tensor([ids]), remove={"shortcuts"})[0] for _ in range(2)]
    assert torch.equal(*blind)
