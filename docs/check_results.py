"""
Is every result shown as today's made by today's recipe and data? docs/tables.py asks it of every
file in results/ (and `python docs/tables.py --check`, which the tests run, fails if one is not).

A result file records the command that made it, the render VERSION of its data and every setting it
ran with (checkpoint.provenance). It is today's when that command, applied to today's train.py and
config files, gives the same settings, and its data's VERSION is the code's: a table measured on an
earlier recipe cannot pass as today's.

    python docs/check_results.py     # a line for each result that is not today's; exit 1 if any
"""
import ast
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configurator import configure  # noqa: E402  (the repository's own, as train.py applies it)
from experiments import VARIANTS  # noqa: E402  (each variant's train.py overrides)

RESULTS = os.path.join(ROOT, "results")
PROBED = {"probe_main.json": "python train.py",  # the run whose ViT each probe table reads
          "probe_detail.json": "python train.py config/detail_at_depth.py",
          "probe_natural.json": "python train.py config/natural.py"}
PROBED.update({f"probe_comp_base_s{s}.json": "python train.py --vit_iters=2400" for s in range(3)})  # stage 0 before 4800
PROBED.update({f"probe_comp_sil_s{s}.json": "python train.py --vit_iters=2400 --vit_silhouettes=0.5" for s in range(3)})
PROBED.update({f"probe_comp_it{n}_s{s}.json": f"python train.py --vit_iters={n}" for n in (1200, 4800) for s in range(3)})
BLIND = "python train.py --vit_detail_level=1 --vit_invariance=30 --vit_targets=['shape','cell','centre','colour'] --vit_recolour_held_out=False"
PROBED.update({"probe_blind_own_s1.json": BLIND + " --shared_fusion=False",  # a main level blind to colour, and ways to it
               "probe_blind_main_s1.json": "python train.py config/blind_main.py",
               "probe_adversary_s1.json": "python train.py config/attributes.py --vit_invariance=0 --vit_adversary=1.0",
               "probe_adversary5_s1.json": "python train.py config/attributes.py --vit_invariance=0 --vit_adversary=5.0",
               "probe_blind_adversary_s1.json": "python train.py config/attributes.py --vit_invariance_share=0.25 --vit_adversary=1.0"})
LLM_PROBED = ("concat", "sparsecut", "sparsecut_own", "density4_own")  # the natural sweep's models, LLM probed
flags = lambda overrides: [f"--{k}={x!r}" for k, x in overrides.items()]  # as experiments.py passes a variant's
PROBED.update({f"probe_natural_llm_{name}.json": " ".join(["python train.py config/natural.py"] + flags(o))
               for _, name, o in VARIANTS if name in LLM_PROBED})
SIZES = ["image_size", "patch_size", "vit_n_layer", "vit_n_head", "vit_n_embd", "n_layer", "n_head", "n_embd", "gelu"]


def train_defaults():
    """train.py's defaults, read from its source without running it (literal values only)."""
    tree = ast.parse(open(os.path.join(ROOT, "train.py")).read())
    out = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        t = node.targets[0]
        if getattr(t, "id", "") == "config":  # the defaults end where train.py collects them
            break
        names = [e.id for e in t.elts] if isinstance(t, ast.Tuple) else [t.id] if isinstance(t, ast.Name) else []
        try:
            values = ast.literal_eval(node.value)
        except ValueError:  # not a literal (device = "cuda" if ... else "cpu"): any value fits
            values = (None,) * len(names) if isinstance(t, ast.Tuple) else None
        out.update(zip(names, values) if isinstance(t, ast.Tuple) else {n: values for n in names})
    return out


def expected_config(command):
    """The config train.py builds from a recorded command line ('python train.py [file] --k=v ...')."""
    args = command.split()[2:]
    files = [a for a in args if not a.startswith("--")]
    if not files:  # as train.py does: the main job's recipe when no config file is given
        files = [os.path.join("config", "shapes_cpu.py")]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return configure(train_defaults(), files + [a for a in args if a.startswith("--")])
    finally:
        os.chdir(cwd)


def problems(results=RESULTS):
    """Why a result file shown as today's is not today's: another render VERSION or other settings."""
    from data.shapes.render import VERSION
    out, defaults = [], train_defaults()
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        name = os.path.basename(path)
        r = json.load(open(path))
        run = r.get("run") or {}
        command = run.get("command", "")
        if command.startswith("python experiments.py"):  # each variant: its config file, then its overrides
            c = run["config"]
            checks = [(v["config"], v["render_version"], expected_config(" ".join(
                ["python train.py", c["config_file"], c["train_args"]] + flags(v["overrides"]))),
                {"seed", "out_dir", "vit_init", "max_iters", "init_from"}) for v in r["rows"]]
        elif command.startswith("python train.py"):
            checks = [(run["config"], run["render_version"], expected_config(command), set())]
        elif command.startswith("python bench_busy.py"):  # (busy.json, busy_quiet.json)
            checks = []  # its own short piece of the main job, timed: nothing shown as the main job's numbers
        elif "trained_with" in r:  # probe.py: the checkpoint's run must be the one the table says
            # a probe of the ViT alone: stage 0 never reads the questions (the same ViT, bit for bit,
            # with and without 'absent' questions), so which types the text stages asked does not matter
            vit_only = {"question_types"} if not run.get("config", {}).get("llm") else set()
            checks = [(r["trained_with"], VERSION, expected_config(PROBED.get(name, "python train.py")),
                       {"seed", "out_dir", "init_from", "max_iters", "vit_init", "threads"} | vit_only)]
        elif command.startswith("python bench.py"):  # no data; its model sizes must be the main job's
            main = expected_config("python train.py")
            checks = [({k: run["config"].get(k) for k in SIZES}, VERSION, {k: main[k] for k in SIZES}, set())]
        else:
            out.append(f"{name}: not a result file this page knows (no 'run' with a known command)")
            continue
        for got, version, want, free in checks:
            if version != VERSION:
                out.append(f"{name}: made with render VERSION {version}, the code's is {VERSION}")
            # a setting added since the run, at its default, is not a difference: a new setting's default
            # must keep the old behaviour (vit_silhouettes=0.0 draws no random number, for one)
            diff = sorted(k for k in set(got) | set(want) if k not in free and got.get(k) != want.get(k)
                          and not (k not in got and want.get(k) == defaults.get(k)))
            if diff:
                out.append(f"{name}: settings differ from what its command gives today: " +
                           ", ".join(f"{k}={got.get(k)!r} (today {want.get(k)!r})" for k in diff[:6]))
    return out


if __name__ == "__main__":
    bad = problems()
    for p in bad:
        print(f"check_results.py: {p}")
    sys.exit(1 if bad else 0)
