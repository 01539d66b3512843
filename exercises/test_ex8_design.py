"""Check for exercise 8: the pattern fits the main job's model, and the harness trains it end to end."""
from exercises import ex8_design as ex
from sparsecut import SparseCut, SparseCutConfig, shortcut_pattern
from tests.forkserver import run
from tests.test_train import TINY


def reference():
    return shortcut_pattern("sparse", 2, "u", 6, 4)  # the pattern to beat


def test_pattern_fits_the_main_model(impl):
    pairs = impl(ex.pattern, reference)()
    assert 1 <= len(pairs) <= 4, "use 1 to 4 shortcuts"
    cfg = SparseCutConfig(vit=dict(image_size=32, patch_size=4, n_layer=6, n_head=4, n_embd=64),
                          llm=dict(block_size=128, vocab_size=447, n_layer=4, n_head=4, n_embd=64),
                          fusion="concat", pairs=[list(p) for p in pairs])  # raises if a pair does not fit
    assert sorted(SparseCut(cfg).shortcuts) == sorted(tuple(p) for p in pairs)


def test_the_harness_trains_it(impl, tmp_path):
    pairs = [list(p) for p in impl(ex.pattern, reference)()]
    train_args = " ".join(TINY + ["--vit_n_layer=6", "--n_layer=4", "--vit_iters=2", "--eval_interval=100",
                                  f"--data_dir={str(tmp_path / 'data')!r}"])
    r = run("experiments.py", "--only=custom", f"--pairs={pairs}", "--max_iters=2", f"--out={str(tmp_path / 'exp')!r}",
            f"--train_args={train_args!r}", "--plot=''")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "custom_" in r.stdout and "overall" in r.stdout
