"""-h / --help on every script: its docstring, then each key with its default and the comment
written next to it in the source (configurator.usage), and exit 0."""
import os
import runpy
import sys

import pytest

from configurator import usage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPTS = [  # (script, a key's line in the help, the comment written next to it in the source)
    ("train.py", "--vit_init=''", "a stage-0 checkpoint (out_dir/vit.pt of another run)"),
    ("sample.py", "--temperature=0.0", "0 = greedy"),
    ("bench.py", "--repeats=21", "timings are the median of this many runs"),
    ("experiments.py", "--max_iters=2000", "steps of the VQA stage, the same for every variant"),
    ("probe.py", "--n_train=1000", "train scenes the probes are fitted on"),
    ("evaluate.py", "--limit=0", "the first `limit` scenes, 0 = all"),
    ("data/shapes/prepare.py", "--question_types=''", "comma-separated, e.g. colour,shape"),
    ("data/shapes/legibility.py", "--n_train=4000", "scenes to fit the classifiers on"),
    ("data/own_example.py", "--n=1500", "pictures, three questions each"),
]


def run_help(monkeypatch, capsys, script, flag):
    """Run the script as `python script flag` in this process (no second torch import)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [script, flag])
    monkeypatch.setattr(sys, "path", list(sys.path))  # the data scripts insert the repo root
    with pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    return e.value.code, capsys.readouterr().out


@pytest.mark.parametrize("script,key,comment", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_each_key_with_its_comment_and_exits_0(monkeypatch, capsys, script, key, comment, flag):
    code, out = run_help(monkeypatch, capsys, script, flag)
    assert code in (0, None), out
    docstring_line = open(os.path.join(ROOT, script)).read().split('"""')[1].strip().splitlines()[0]
    assert out.startswith(docstring_line)
    line = next((l for l in out.splitlines() if l.strip().startswith(key)), None)
    assert line is not None, f"{key} missing from the help of {script}:\n{out}"
    assert comment in line


def test_train_help_marks_what_the_default_config_file_overrides(monkeypatch, capsys):
    _, out = run_help(monkeypatch, capsys, "train.py", "--help")
    line = next(l for l in out.splitlines() if l.strip().startswith("--max_iters="))
    main_job = {}
    exec(open(os.path.join(ROOT, "config", "shapes_cpu.py")).read(), main_job)
    assert line.strip().startswith("--max_iters=3000") and f"[config/shapes_cpu.py sets {main_job['max_iters']}]" in line


def test_usage_reads_names_tuples_dicts_and_group_comments_but_not_functions(tmp_path):
    src = tmp_path / "s.py"
    src.write_text('"""Doc line."""\n'
                   "def f():\n    a = 9  # not this one\n"
                   "# the sizes\n"
                   "a = 1  # one\n"
                   "b, c = 2, 'x'  # two of them\n"
                   "d = 3\n"
                   "if True:\n    cfg = {\n        'e': [1],  # in a dict\n    }\n")
    text = usage({"a": 1, "b": 2, "c": "x", "d": 3, "e": [1], "z": 0}, str(src))
    lines = text.splitlines()
    assert lines[0] == "Doc line." and "  # the sizes" in lines
    get = lambda k: next(l for l in lines if l.strip().startswith(f"--{k}="))
    assert get("a").split()[1:] == ["one"] and "not this one" not in text
    assert get("b").endswith("two of them") and get("c").startswith("  --c='x'") and get("c").endswith("two of them")
    assert get("d").strip() == "--d=3" and get("e").endswith("in a dict") and get("z").strip() == "--z=0"
