"""Every bad input a one-line error, and nothing lost (issues 13 and 26): a table of bad commands,
each run as its own process (exit code, message, no traceback; tests/forkserver.py), plus the
checkpoint, data, NaN, resume and DDP guarantees behind them. Runs killed, disks full or read-only,
one run per out_dir: tests/test_nothing_lost.py.
"""
import json
import os
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests.forkserver import run_all  # noqa: E402
from tests.test_train import TINY, losses  # noqa: E402

def conv(answer="red"):
    return [{"from": "human", "value": "<image>\nwhat colour is it?"}, {"from": "gpt", "value": answer}]


def make_inputs(tmp, trained):
    """LLaVA files good and bad, config files, checkpoints that are not ours, a regular file;
    checkpoints of the session's tiny model (trained) spoilt one way each."""
    (tmp / "img").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp / "img" / f"{name}.png")
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp / "outside.png")
    os.symlink(tmp / "outside.png", tmp / "img" / "link.png")  # inside image_root, pointing out of it
    os.mkfifo(tmp / "img" / "fifo.png")  # open() would wait for a writer forever
    good = [{"id": n, "image": f"{n}.png", "conversations": conv()} for n in "abc"]
    with_image = lambda name: [dict(good[0], image=name)] + good[1:]
    files = {"malformed.json": "[{", "dict.json": {"id": 1}, "strings.json": ["a.png", "b.png"],
             "no_image.json": [{"id": "a", "conversations": conv()}], "empty_list.json": [],
             "no_conv.json": [{"id": "a", "image": "a.png"}], "null_image.json": [dict(good[0], image=None)],
             "missing_image.json": [dict(good[0], image="nope.png")] + good[1:], "one.json": good[:1],
             "long.json": [dict(g, conversations=conv("word " * 800)) for g in good], "good.json": good,
             "deep.json": "[" * 200000 + "]" * 200000, "fifo.json": with_image("fifo.png"),
             "dotdot.json": with_image("../outside.png"), "absolute.json": with_image(str(tmp / "outside.png")),
             "link.json": with_image("link.png")}
    for name, content in files.items():
        (tmp / name).write_text(content if isinstance(content, str) else json.dumps(content))
    (tmp / "zero.json").write_bytes(b"")
    (tmp / "a_file").write_text("not a folder")
    (tmp / "syntax.py").write_text("batch_size = 4\nmax_iters = (\n")
    (tmp / "name.py").write_text("batch_size = 4\nmax_iters = undefined_name\n")
    torch.save({"model": {}, "model_config": {}}, tmp / "no_config.pt")
    torch.save(torch.zeros(3), tmp / "tensor.pt")
    for name in ("no_config.pt", "tensor.pt"):
        (tmp / name.split(".")[0]).mkdir()
        os.replace(tmp / name, tmp / name.split(".")[0] / "ckpt.pt")
    for name in ("ckpt.pt", "vit.pt"):  # {folder: checkpoint}, each spoilt one way; sample.py reads folder/ckpt.pt
        nan = lambda ck: ck["model"][next(k for k in ck["model"] if k.startswith("vit."))].fill_(float("nan"))
        spoil = {"model": lambda ck: None, "no_stage": lambda ck: ck.pop("stage"), "nan": nan,
                 "no_model": lambda ck: ck.pop("model"), "empty_config": lambda ck: ck.update(config={}),
                 "llm_string": lambda ck: ck["model_config"].update(llm="GPTConfig(n_layer=2)")}
        for folder, how in spoil.items():
            ck = torch.load(trained / "out" / name, weights_only=True)
            how(ck)
            (tmp / folder).mkdir(exist_ok=True)
            torch.save(ck, tmp / folder / name)


def T(tmp, *args):
    return ("train.py", [os.path.join("config", "shapes_cpu.py")] + TINY + [f"--out_dir={tmp / 'out'}",
                                                                            f"--data_dir={tmp / 'data'}"] + list(args))


def own(tmp, name, *args):
    return T(tmp, f"--data={str(tmp / name)!r}", f"--image_root={str(tmp / 'img')!r}", "--vit_iters=0",
             "--freeze_vit=False", *args)


# (issue item, case, message in the one line) -> the command, given the inputs folder
CASES = {
    ("4", "missing JSON", "neither 'shapes' nor an existing LLaVA JSON"): lambda t: own(t, "nope.json"),
    ("4", "malformed JSON", "not valid JSON"): lambda t: own(t, "malformed.json"),
    ("4", "zero-byte JSON", "is empty (0 bytes)"): lambda t: own(t, "zero.json"),
    ("4", "a dict", "expected a JSON list of records, got dict"): lambda t: own(t, "dict.json"),
    ("4", "a list of strings", "needs the keys 'id', 'image' and 'conversations'"): lambda t: own(t, "strings.json"),
    ("4", "no image key", "needs the keys"): lambda t: own(t, "no_image.json"),
    ("4", "no conversations", "needs the keys"): lambda t: own(t, "no_conv.json"),
    ("4", "image null", "'image' must be a file name, got None"): lambda t: own(t, "null_image.json"),
    ("4", "image missing on disk", "image not found"): lambda t: own(t, "missing_image.json"),
    ("4", "[]", "the list of records is empty"): lambda t: own(t, "empty_list.json"),
    ("4", "one record", "has 1 record: one is held out for testing"): lambda t: own(t, "one.json"),
    ("4", "806-token answer", "does not fit block_size"): lambda t: own(t, "long.json"),
    ("4", "no image_root", "check image_root=''"): lambda t: own(t, "good.json", "--image_root=''"),
    ("4", "wrong image_root", "is not a folder"): lambda t: own(t, "good.json", f"--image_root={str(t / 'nope')!r}"),
    ("4", "image_size=63", "image_size=63 must be even"): lambda t: T(t, "--image_size=63"),
    ("4", "unknown question type", "unknown question types ['colur']"): lambda t: T(t, "--question_types=['colur']"),
    ("4", "data_dir is a file", "is a file: give a folder"): lambda t: T(t, f"--data_dir={str(t / 'a_file')!r}"),
    ("4", "device=cuda without CUDA", "use --device=cpu"): lambda t: T(t, "--device='cuda'"),
    ("4", "out_dir under a file", "is a file, not a folder"): lambda t: T(t, f"--out_dir={str(t / 'a_file' / 'o')!r}"),
    ("5", "batch_size=0", "batch_size=0 must be >= 1"): lambda t: T(t, "--batch_size=0"),
    ("5", "eval_interval=0", "eval_interval=0 must be >= 1"): lambda t: T(t, "--eval_interval=0"),
    ("5", "gradient_accumulation_steps=0", "gradient_accumulation_steps=0 must be >= 1"):
        lambda t: T(t, "--gradient_accumulation_steps=0"),
    ("5", "max_iters=-5", "max_iters=-5 must be >= 0"): lambda t: T(t, "--max_iters=-5"),
    ("5", "vit_batch_size=0", "vit_batch_size=0 must be >= 1"): lambda t: T(t, "--vit_batch_size=0"),
    ("5", "vit_iters=-1", "vit_iters=-1 must be >= 0"): lambda t: T(t, "--vit_iters=-1"),
    ("5", "learning_rate=0", "learning_rate=0.0 must be > 0"): lambda t: T(t, "--learning_rate=0"),
    ("5", "eval_fraction=1", "eval_fraction=1.0 must be between 0 and 1"): lambda t: T(t, "--eval_fraction=1"),
    ("5", "out_dir=None", "'out_dir' (--out_dir=None) cannot be None"): lambda t: T(t, "--out_dir=None"),
    ("5", "config SyntaxError", "line 2: SyntaxError"): lambda t: ("train.py", [str(t / "syntax.py")]),
    ("5", "config NameError", "line 2: NameError: name 'undefined_name'"): lambda t: ("train.py", [str(t / "name.py")]),
    ("6", "num_samples=0", "--num_samples=0 must be >= 1"): lambda t: ("sample.py", ["--num_samples=0"]),
    ("6", "top_k=-1", "--top_k=-1 must be >= 0"): lambda t: ("sample.py", ["--top_k=-1"]),
    ("6", "temperature=-1", "--temperature=-1.0 must be >= 0"): lambda t: ("sample.py", ["--temperature=-1"]),
    ("6", "save .txt", "unknown image extension '.txt'"): lambda t: ("sample.py", [f"--save={t / 'a.txt'}"]),
    ("6", "save under a file", "a_file is a file"): lambda t: ("sample.py", [f"--save={t / 'a_file' / 'x.png'}"]),
    ("6", "checkpoint without config", "has no 'config'"): lambda t: ("sample.py", [f"--out_dir={t / 'no_config'}", "--split=test"]),
    ("6", "bare tensor", "holds a Tensor, not a train.py checkpoint"): lambda t: ("sample.py", [f"--out_dir={t / 'tensor'}", "--split=test"]),
    ("3", "sample --device=cuda without CUDA", "no CUDA GPU"): lambda t: ("sample.py", ["--device=cuda", "--split=test"]),
    ("5", "unknown key", "unknown config key 'no_such_key'"): lambda t: T(t, "--no_such_key=1"),
    ("5", "max_iters='ten'", "config key 'max_iters'"): lambda t: T(t, "--max_iters='ten'"),
    ("5", "unknown fusion", "unknown fusion 'fancy'"): lambda t: T(t, "--fusion='fancy'"),
    ("5", "density too high", "density=9 does not fit"): lambda t: T(t, "--shortcut='sparse'", "--density=9"),
    ("5", "resume from nothing", "has no ckpt.pt or vit.pt"): lambda t: T(t, "--init_from='resume'"),
    ("29", "threads=0", "train.py: threads=0 must be a whole number >= 1"): lambda t: T(t, "--threads=0"),
    # issue 26: each found by an outside tester as a traceback, a hang or garbage accepted silently
    ("26", "n_embd=0", "n_embd=0 must be >= 1"): lambda t: T(t, "--n_embd=0"),
    ("26", "question_types=[]", "question_types=[] asks no questions"):
        lambda t: T(t, "--question_types=[]", f"--data_dir={str(t / 'data_qt')!r}"),
    ("26", "device=meta", "device='meta' cannot run a model here"): lambda t: T(t, "--device='meta'"),
    ("26", "vit_init without 'model'", "holds no weights that fit this model config (KeyError: 'model')"):
        lambda t: T(t, f"--vit_init={str(t / 'no_model' / 'vit.pt')!r}"),
    ("26", "JSON nested 200k deep", "nested too deeply"): lambda t: own(t, "deep.json"),
    ("26", "image is a FIFO", "not a regular file"): lambda t: own(t, "fifo.json"),
    ("26", "sample --image=FIFO", "not a regular file"):
        lambda t: ("sample.py", [f"--out_dir={t / 'model'}", f"--image={t / 'img' / 'fifo.png'}"]),
    # (--max_iters=2: should the check go, the run is short)
    ("26", "image ../x", "outside image_root="): lambda t: own(t, "dotdot.json", "--max_iters=2"),
    ("26", "image /absolute", "outside image_root="): lambda t: own(t, "absolute.json", "--max_iters=2"),
    ("26", "image a symlink out", "outside image_root="): lambda t: own(t, "link.json", "--max_iters=2"),
    ("26", "image_root='' and ../x", "outside the JSON's folder"):
        lambda t: own(t, "dotdot.json", "--image_root=''", "--max_iters=2"),
    ("26", "sample: config {}", "its 'config' has no 'data'"): lambda t: ("sample.py", [f"--out_dir={t / 'empty_config'}"]),
    ("26", "evaluate: config {}", "its 'config' has no 'data'"): lambda t: ("evaluate.py", [f"--out_dir={t / 'empty_config'}"]),
    ("26", "sample: llm a string", "does not hold a SparseCut model (AttributeError"):
        lambda t: ("sample.py", [f"--out_dir={t / 'llm_string'}", "--split=test"]),
    ("26", "evaluate: llm a string", "does not hold a SparseCut model (AttributeError"):
        lambda t: ("evaluate.py", [f"--out_dir={t / 'llm_string'}"]),
    ("26", "sample: NaN weights", "holds non-finite weights"): lambda t: ("sample.py", [f"--out_dir={t / 'nan'}", "--split=test"]),
    ("26", "evaluate: NaN weights", "holds non-finite weights"): lambda t: ("evaluate.py", [f"--out_dir={t / 'nan'}"]),
    ("26", "probe: NaN weights", "holds non-finite weights"): lambda t: ("probe.py", [f"--ckpt={t / 'nan' / 'vit.pt'}"]),
    ("26", "probe --n_train=0", "n_train=0 must be >= 1"): lambda t: ("probe.py", ["--n_train=0"]),
    ("26", "probe --json=<a folder>", "is a folder: give a file name"): lambda t: ("probe.py", [f"--json={t}"]),
    ("26", "bench --json=<a folder>", "is a folder: give a file name"): lambda t: ("bench.py", ["--quick", f"--json={t}"]),
    ("26", "bench --batch_size=0", "batch_size=0 must be >= 1"): lambda t: ("bench.py", ["--batch_size=0"]),
}
# Each config file sets only keys train.py knows: the one error is the bogus key added after it.
CASES.update({("5", f"config/{name}", "unknown config key 'bogus_key'"):
              (lambda t, name=name: ("train.py", [os.path.join("config", name), "--bogus_key=1"]))
              for name in sorted(f for f in os.listdir(os.path.join(ROOT, "config")) if f.endswith(".py"))})


def unblock(fifo, done):
    """A hang guard for the FIFO cases: should a script open the FIFO (the bug), a writer comes and
    goes, so that it reads an empty file and fails, instead of waiting an hour for the test's timeout."""
    while not done.is_set():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # succeeds only while a reader waits
        except OSError:
            pass
        time.sleep(0.5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained):
    """Every case of the table, and the training runs below, in one serving process."""
    t = tmp_path_factory.mktemp("bad")
    make_inputs(t, trained)
    cases = [make(t) for make in CASES.values()]
    data = [f"--data_dir={t / 'data'}", "--n_train=16", "--n_test=4"]
    quick = data + ["--vit_iters=0", "--warmup_iters=1", "--align_iters=2", "--gate=True", "--freeze_vit=False",
                    "--curriculum_frac=0.0"]
    train = {  # name -> (out_dir, args after TINY), run in this order
        "nan_tune": ("nan_tune", data + ["--vit_iters=0", "--learning_rate=1e6", "--max_iters=6", "--eval_interval=1"]),
        "nan_vit": ("nan_vit", data + ["--vit_iters=6", "--vit_lr=1e6", "--max_iters=0", "--eval_interval=5"]),
        "align_tune": ("align_tune", quick + ["--max_iters=2"]),                      # align, then tune: one run
        "align_only": ("split", quick + ["--max_iters=0"]),                           # align, stop ...
        "then_tune": ("split", quick + ["--max_iters=2", "--init_from='resume'"]),    # ... tune from its checkpoint
        "longer": ("split", quick + ["--max_iters=3", "--init_from='resume'"]),       # resume with another max_iters
        "lr_1e300": ("lr_1e300", data + ["--vit_iters=0", "--learning_rate=1e300", "--max_iters=2"]),  # Adam overflows
        "vit_lr_1e300": ("vit_lr_1e300", data + ["--vit_iters=2", "--vit_lr=1e300", "--max_iters=0"]),
        "no_stage": ("no_stage", data + ["--vit_iters=0", "--max_iters=1", f"--init_from={str(t / 'no_stage' / 'ckpt.pt')!r}"]),
    }
    cases += [("train.py", [os.path.join("config", "shapes_cpu.py")] + TINY + args + [f"--out_dir={t / out}"])
              for out, args in train.values()]
    scene = [f"--out_dir={trained / 'out'}", "--split=test", "--index=1", "--question=what colour is the object?"]
    cases += [("sample.py", scene + [f"--temperature={temperature}"]) for temperature in (0, 1e-40)]
    done = threading.Event()
    threading.Thread(target=unblock, args=(str(t / "img" / "fifo.png"), done), daemon=True).start()
    try:
        results = run_all(cases)
    finally:
        done.set()
    return t, dict(zip(CASES, results)), dict(zip(list(train) + ["greedy", "tiny_temperature"], results[len(CASES):]))


@pytest.mark.parametrize("key", CASES, ids=lambda k: f"{k[0]}-{k[1]}")
def test_bad_input_is_one_line(runs, key):
    code, _, err = runs[1][key]
    assert code != 0 and "Traceback" not in err, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and key[2] in lines[0], err[-2000:]


def test_checked_before_the_long_work(runs):
    """Issue 26: question_types before the data is generated; --json before the probe or benchmark."""
    t, cases, _ = runs
    assert not (t / "data_qt").exists()
    for key in [k for k in CASES if "--json=" in k[1]]:
        assert cases[key][1] == "", cases[key][1][-2000:]  # nothing measured, nothing printed


@pytest.mark.parametrize("name", ["lr_1e300", "vit_lr_1e300"])
def test_a_learning_rate_past_float32_stops_as_non_finite(runs, name):
    """Issue 26: Adam raised 'value cannot be converted to type float without overflow'; now the
    non-finite stop of a huge learning rate, in one line, with nothing non-finite saved."""
    t, _, train = runs
    code, _, err = train[name]
    assert code != 0 and "Traceback" not in err, err[-2000:]
    assert "gave a non-finite update" in err.strip().splitlines()[-1] and "Lower the learning rate" in err
    assert not (t / name / "ckpt.pt").exists() and not (t / name / "vit.pt").exists()


def test_init_from_a_checkpoint_without_stage(runs):
    """Issue 26: its stage is only reported; the weights fit, so the run goes on."""
    code, out, err = runs[2]["no_stage"]
    assert code == 0 and "Traceback" not in err, err[-2000:]
    assert "initialised from" in out and "(? step 4)" in out


def test_a_tiny_temperature_samples_the_greedy_answer(runs):
    """Issue 26: logits / 1e-40 overflowed to inf, and softmax to NaN ('probability tensor contains
    inf/nan'); the limit of a temperature going to 0 is the greedy answer."""
    greedy, tiny = runs[2]["greedy"], runs[2]["tiny_temperature"]
    assert greedy.returncode == tiny.returncode == 0, tiny.stderr[-2000:]
    assert greedy.stdout == tiny.stdout and " -> " in tiny.stdout


def test_image_paths_resolve_inside_the_json_folder_without_image_root(tmp_path):
    """Issue 26: with image_root='' an image path is relative to the JSON's own folder (and stays in it)."""
    from data.llava import read_llava
    (tmp_path / "data" / "img").mkdir(parents=True)
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "data" / "img" / "a.png")
    (tmp_path / "data" / "train.json").write_text(json.dumps([{"id": "a", "image": "img/a.png", "conversations": conv()}]))
    assert read_llava(str(tmp_path / "data" / "train.json"), "", 32)[0]["image"].shape == (32, 32, 3)


def test_unknown_key_lists_the_valid_ones(runs):
    line = runs[1][("5", "unknown key", "unknown config key 'no_such_key'")][2].strip()
    assert "valid keys:" in line and "max_iters" in line


@pytest.mark.parametrize("name, file", [("nan_tune", "ckpt.pt"), ("nan_vit", "vit.pt")])
def test_nan_stops_and_saves_nothing_non_finite(runs, name, file):
    """Item 1: a huge learning rate; what is on disk after is finite, and the message says what it is."""
    t, _, train = runs
    code, _, err = train[name]
    path = str(t / name / file)
    assert code != 0 and "Traceback" not in err and "non-finite" in err.strip().splitlines()[-1], err[-2000:]
    if os.path.exists(path):
        assert f"{path} is unchanged" in err
        ck = torch.load(path, weights_only=True)
        assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    else:
        assert "no checkpoint was written" in err
    assert name != "nan_tune" or os.path.exists(path)      # saved at step 1, before the blow-up ...
    assert name != "nan_vit" or not os.path.exists(path)   # ... and the stage-0 one never reached step 5


def test_resume_with_another_max_iters_keeps_the_schedule(runs):
    """Item 9: 2 tune steps planned, resumed to 3: the schedule stays 2 steps long (the LR of step 2
    at its floor, not halfway down a 3-step cosine), and the run says so."""
    t, _, train = runs
    assert train["longer"][0] == 0, train["longer"][2][-2000:]
    assert "max_iters=3, but the checkpoint's run planned 2 steps" in train["longer"][1]
    ck = torch.load(t / "split" / "ckpt.pt", weights_only=True)
    group = ck["optimizer"]["param_groups"][0]
    assert ck["iter"] == 3 and group["lr"] == pytest.approx(group["base_lr"] * ck["config"]["min_lr_ratio"])


def test_align_leaves_no_gradient_behind(runs):
    """Item 10c: align then tune in one run = align, stop, resume into tune (which starts with no
    gradients): the ViT's and the gates' gradients of the align stage must not reach tune (with
    them, checked by hand, the tune losses differ from step 1 on)."""
    t, _, train = runs
    for k in ("align_tune", "align_only", "then_tune"):
        assert train[k][0] == 0, train[k][2][-2000:]
    one = [e for e in losses(t / "align_tune" / "log.jsonl") if e[0] == "tune"]
    two = [e for e in losses(t / "split" / "log.jsonl") if e[0] == "tune"][:2]
    assert len(one) == 2 and one == two


def test_checkpoint_crash_between_write_and_replace(tmp_path, monkeypatch):
    """Item 8: the old checkpoint stays whole and loadable, and no .tmp is left behind."""
    from checkpoint import load_checkpoint, save_checkpoint
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(path, {"iter": 1, "model": {"w": torch.ones(3)}})

    def crash(*a):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"iter": 2, "model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert load_checkpoint(path)["iter"] == 1 and os.listdir(tmp_path) == ["ckpt.pt"]
    with pytest.raises(ValueError, match="non-finite"):  # item 1's last line of defence
        save_checkpoint(path, {"iter": 3, "model": {"w": torch.tensor([float("nan")])}})
    assert load_checkpoint(path)["iter"] == 1


def test_checkpoint_errors_blame_the_right_thing(tmp_path):
    """Item 3: a good file on a machine without CUDA is not called corrupt."""
    from checkpoint import load_checkpoint
    torch.save({"iter": 1}, tmp_path / "good.pt")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU") as e:
            load_checkpoint(str(tmp_path / "good.pt"), "cuda")
        assert "corrupt" not in str(e.value)
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(str(tmp_path / "bad.pt"))


class Evil:
    def __reduce__(self):  # unpickling this would create a file
        return (open, ("/tmp/sparsecut_pwned_by_pickle", "w"))


def test_a_malicious_pickle_is_never_run(tmp_path):
    from checkpoint import load_checkpoint
    marker = "/tmp/sparsecut_pwned_by_pickle"
    if os.path.exists(marker):
        os.remove(marker)
    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(str(tmp_path / "evil.pt"))
    assert not os.path.exists(marker)


def test_rng_states_come_back_on_cpu(tmp_path, monkeypatch):
    """Item 10a: asked for another device ('meta' stands in for CUDA), the RNG states still come
    back on the CPU, where Generator.set_state and torch.set_rng_state need them."""
    import checkpoint
    from checkpoint import load_checkpoint, save_checkpoint
    monkeypatch.setattr(checkpoint, "check_device", lambda device: None)  # 'meta' trains nothing: refused there
    g = torch.Generator().manual_seed(3)
    save_checkpoint(str(tmp_path / "ckpt.pt"), {"model": {"w": torch.ones(2)},
                                                "rng": {"sampler": [g.get_state()], "torch": torch.get_rng_state()}})
    expected = torch.randint(100, (5,), generator=g)
    ck = load_checkpoint(str(tmp_path / "ckpt.pt"), "meta")
    g2 = torch.Generator()
    g2.set_state(ck["rng"]["sampler"][0])
    torch.set_rng_state(ck["rng"]["torch"])
    assert torch.equal(torch.randint(100, (5,), generator=g2), expected)


def test_prepare_is_atomic(tmp_path, monkeypatch):
    """Item 2: a prepare killed after its train split, or mid-file, and a file cut short: the
    folder reads as incomplete and is generated again, never mixed with the old splits."""
    from data.shapes import prepare as P
    kw = dict(n_train=6, n_val=3, n_test=3, image_size=48)
    d = tmp_path / "d"
    P.prepare(d, seed=0, **kw)
    before = {s: P.load_split(d, s)[2] for s in P.SPLITS}
    real = P.make_split

    def killed_at_val(split, *a, **k):
        if split == "val":
            raise KeyboardInterrupt
        return real(split, *a, **k)
    monkeypatch.setattr(P, "make_split", killed_at_val)
    with pytest.raises(KeyboardInterrupt):
        P.prepare(d, seed=1, **kw)            # the train split of seed 1 is written, then killed
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="no complete shapes data"):
        P.load_split(d, "val")
    assert P.ensure_prepared(d, seed=0, **kw)  # regenerated, not trusted
    assert {s: P.load_split(d, s)[2] for s in P.SPLITS} == before

    def half_save(f, a):
        f.write(b"\x93NUMPY half")
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        P.prepare(d, seed=0, **kw)            # killed mid-file: only a .tmp is half written
    monkeypatch.undo()
    assert P.ensure_prepared(d, seed=0, **kw) and P.load_split(d, "train")[2] == before["train"]
    f = d / "val_images.npy"
    f.write_bytes(f.read_bytes()[:100])       # cut short behind our back
    with pytest.raises(FileNotFoundError):
        P.load_split(d, "val")
    assert P.ensure_prepared(d, seed=0, **kw) and not P.ensure_prepared(d, seed=0, **kw)
    assert P.load_split(d, "val")[2] == before["val"]
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]


@pytest.mark.parametrize("mode, value, grey", [("I;16", 32896, 128), ("I;16B", 65535, 255), ("I", 40000, 156),
                                               ("I", 200, 200), ("F", 0.5, 128), ("F", 100.0, 100), ("La", (90, 255), 90)])
def test_sixteen_bit_and_float_images_are_scaled_not_clipped(tmp_path, mode, value, grey):
    """Item 7: convert('RGB') would clip 16-bit and float pixels to white; load_image scales them."""
    from data.llava import load_image, to_rgb
    assert to_rgb(Image.new(mode, (4, 4), value)).getpixel((0, 0)) == (grey,) * 3
    ramp = (np.arange(48 * 48).reshape(48, 48) * 28).astype(np.uint16)      # 0 .. 64484, a 16-bit PNG
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    img = load_image(str(tmp_path / "ramp.png"), 48)
    assert img.dtype == np.uint8 and len(np.unique(img)) > 200              # a ramp, not black and white
    assert abs(int(img[24, 24, 0]) - round(ramp[24, 24] / 257)) <= 1


