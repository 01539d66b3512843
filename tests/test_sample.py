"""sample.py on an image file, on a dataset scene, and on bad inputs."""
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
