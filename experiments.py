"""
What each design is worth: every variant trained with the same budget and seeds on the shapes
data, then one table of test accuracy per question type and caption F1 (mean, and spread over seeds).

    python experiments.py                                  # every group, 1 seed, CPU budget
    python experiments.py --only=core                      # a group, or variants: --only=baseline,sparsecut
    python experiments.py --seeds=[0,1,2] --max_iters=3000 # more seeds / steps (the GPU sweep)
    python experiments.py --train_args="--device='cuda'"   # anything else train.py takes
    python experiments.py --only=sparsecut,custom --pairs="[[3, 0], [1, 2]]"   # your own pattern

    python experiments.py --config_file=config/detail_at_depth.py --out=out/exp_detail --only=shortcuts

Each run is `python train.py <config> ... --out_dir=<out>/<variant>-<max_iters>-s<seed>`; a run
whose results.json exists is skipped, so an interrupted sweep resumes where it stopped (other
--train_args or config_file: use another --out). Stage 0 (the ViT) is trained once per seed, in
<out>/vit-s<seed> with that seed, and every frozen-ViT variant of that seed starts from it (vit_init):
a seed changes the ViT too. Every training runs the thread count chosen when the sweep starts (as
many as are free, machine.py; --threads=N): their numbers compare, and come again on this machine.
`--jobs=2` runs two trainings side by side, one thread each (on a 2-core machine two 2-thread jobs
fight and each becomes 10-30x slower).
"""
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from checkpoint import exit_in_one_line, provenance, write_json
from configurator import configure_or_exit
from drawing import COLOURS, canvas, dashed, legend, save, y_axis
from machine import use_threads

config_file = "config/shapes_cpu.py"
out = "out/exp"
only = ""                # comma-separated group or variant names; "" = all
seeds = [0]
max_iters = 2000         # steps of the VQA stage, the same for every variant
train_args = ""          # more train.py arguments for every run, e.g. "--device='cuda'"
plot = "results.png"     # accuracy per question type per variant (in out), "" = none
pairs = []               # your own pattern [[vit_block, llm_layer], ...]: adds the group "custom"
jobs = 1                 # trainings at once; > 1 gives each one thread (OMP_NUM_THREADS=1)
threads = None           # each training's CPU threads; None: 1 with --jobs > 1, else as many as are free at start
markdown = False         # also print the table in Markdown, with paraphrase and compositional (the README's)

config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, str, list, bool, type(None))}
n_threads = None  # each training's thread count, chosen once per sweep by main(); None: train.py chooses
children, stopping = set(), threading.Event()  # the train.py processes running now; set once the sweep is stopped

# (group, name, train.py overrides). 'sparsecut' is the main job's model (config/shapes_cpu.py).
SPARSECUT = dict(fusion="concat", shortcut="sparse", density=2, order="u")
VARIANTS = [
    ("core", "baseline", dict(fusion="mlp", shortcut="none")),           # LLaVA-1.5: low view only
    ("core", "xattn", dict(fusion="cross_attention", shortcut="none")),  # multi-res fusion, input only
    ("core", "concat", dict(fusion="concat", shortcut="none")),
    ("core", "sparsecut", SPARSECUT),
    ("core", "sparsecut-xattn", dict(SPARSECUT, fusion="cross_attention")),
    ("core", "deepstack", dict(fusion="mlp", shortcut="deepstack")),
    ("core", "naive", dict(fusion="naive", shortcut="none", block_size=384)),  # 5N = 320 image tokens
    ("pattern", "dense_bottom", dict(SPARSECUT, shortcut="dense_bottom")),
    ("pattern", "dense_top", dict(SPARSECUT, shortcut="dense_top")),
    ("order", "parallel", dict(SPARSECUT, order="parallel")),
    ("order", "parallel4", dict(SPARSECUT, order="parallel", density=4)),  # at density 4 the orders
    ("order", "random4", dict(SPARSECUT, order="random", density=4)),      # differ in more than a swap
    ("density", "density1", dict(SPARSECUT, density=1)),
    ("density", "density4", dict(SPARSECUT, density=4)),                   # every level below the main one
    ("recipe", "end_to_end", dict(SPARSECUT, vit_iters=0, freeze_vit=False)),  # no stage 0, ViT trains too
    ("recipe", "heads_all_low", dict(SPARSECUT, vit_targets=["shape", "cell", "centre", "colour", "texture"])),
    ("recipe", "no_crop_heads", dict(SPARSECUT, vit_crops=0.0, vit_crop_targets=[])),  # stage 0 on low views only
    ("gates", "gated_dense", dict(SPARSECUT, shortcut="dense_bottom", density=4, gate=True)),
    ("norm", "concat_norm", dict(fusion="concat", shortcut="none", level_norm=True)),  # beyond the paper:
    ("norm", "sparsecut_norm", dict(SPARSECUT, level_norm=True)),               # a LayerNorm per level
    ("norm", "parallel_norm", dict(SPARSECUT, order="parallel", level_norm=True)),  # before the fusion
    ("fusion", "sparsecut_own", dict(SPARSECUT, shared_fusion=False)),  # beyond the paper: a fusion per level
    ("fusion", "density4_own", dict(SPARSECUT, density=4, shared_fusion=False)),  # ... from every level below the main one
]
# what the shortcuts are worth (README "Results"): input-only fusion against every pattern, same ViT
GROUPS = {"shortcuts": ["concat", "sparsecut", "parallel", "dense_bottom", "gated_dense", "density1",
                        "density4", "parallel4", "sparsecut_norm", "parallel_norm", "sparsecut_own"],
          "default3": ["baseline", "concat", "sparsecut"],
          "natural": ["concat", "sparsecut", "sparsecut_own", "density4_own"]}  # config/natural.py
STAGE0_KEYS = {"vit_iters", "vit_targets", "vit_crop_targets", "vit_crops"}  # variants that need their own
TYPES = ["colour", "shape", "count", "position", "texture", "overall"]


def finished(out_dir, done):
    """A run's results.json as a dict (None for a stage-0 run, whose mark is DONE) if it finished,
    False if not: an unreadable results.json (a run killed as it wrote one) is not finished."""
    path = os.path.join(out_dir, done)
    if not os.path.exists(path):
        return False
    if done != "results.json":
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"  {path} is unreadable ({type(e).__name__}): running it again", flush=True)
        return False


def run(out_dir, overrides, log, done="results.json"):
    """One train.py run, skipped if it finished before, continued (init_from='resume') if it was
    cut off after a checkpoint; returns its results.json (None if it has none)."""
    results = finished(out_dir, done)
    if results is not False:
        print(f"  {out_dir}: done before, skipped")
        return results
    cmd = [sys.executable, "train.py", config_file] + shlex.split(train_args)  # the variant's own keys win
    cmd += [f"--{k}={v!r}" for k, v in overrides.items()] + [f"--out_dir={out_dir!r}"]
    if any(os.path.exists(os.path.join(out_dir, f)) for f in ("ckpt.pt", "vit.pt")):
        cmd.append("--init_from='resume'")  # an interrupted run continues where its checkpoint is
    print("  " + " ".join(shlex.quote(c) for c in cmd[1:]), flush=True)
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(n_threads)} if n_threads else {}))  # one count for the sweep
    with open(log, "a") as f:  # a continued run's log follows the first part's
        if stopping.is_set():  # not started: the sweep is being stopped
            sys.exit("experiments.py: stopped")
        child = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        children.add(child)
        if stopping.is_set():  # stopped while it started
            child.terminate()
        code = child.wait()
        children.discard(child)
        if code:
            sys.exit(f"experiments.py: the run in {out_dir} failed; see {log}")
    results = finished(out_dir, "results.json")
    return results or None  # max_iters=0: stage 0 only


def stage0(seed):
    vit = os.path.join(out, f"vit-s{seed}")
    run(vit, {"max_iters": 0, "seed": seed}, vit + ".log", done="DONE")
    open(os.path.join(vit, "DONE"), "w").close()  # vit.pt alone may be a stage 0 cut off midway


def mean_spread(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def draw(rows, path, title):
    """A bar chart with PIL: per question type, one bar per variant (mean over seeds, +- sd as a
    whisker), the variants of one group side by side, a gap between groups; a dashed line per
    type marks the majority baseline (the test split's best constant answer)."""
    colours = [COLOURS[v % len(COLOURS)] for v in range(len(rows))]
    offset = [0]  # x of each bar inside a type's cluster: 4 px more at every change of group
    for a, b in zip(rows, rows[1:]):
        offset.append(offset[-1] + 9 + (4 if a["group"] != b["group"] else 0))
    bar, gap, H, top, left, right = 9, 18, 260, 30, 56, 190  # right: the legend's width
    width = offset[-1] + bar
    W = left + len(TYPES) * (width + gap) + right
    img, d = canvas(W, H + top + 60)
    y_of = y_axis(d, left, W - right, top, H)
    d.text((4, top - 22), "test accuracy (mean over seeds, whisker: +- sd)", fill="black")
    for t, typ in enumerate(TYPES):
        x0 = left + t * (width + gap)
        for v, r in enumerate(rows):
            mean, sd = r["acc"][typ]
            x = x0 + offset[v]
            d.rectangle([x, y_of(mean), x + bar - 2, top + H], fill=colours[v])
            if sd:
                d.line([(x + bar // 2 - 1, y_of(mean - sd)), (x + bar // 2 - 1, y_of(mean + sd))], fill="black")
        chance = rows[0].get("majority", {}).get(typ)
        if chance is not None:
            dashed(d, x0 - 3, x0 + width + 3, y_of(chance))
        d.text((x0, top + H + 6), typ, fill="black")
    legend(d, W - right + 10, top, [("majority baseline", "black", "dashed")] +
           [(f"{r['group']}: {r['name']}", colours[v], "box") for v, r in enumerate(rows)])
    d.text((left, H + top + 30), title, fill="black")
    save(img, path)


def main(argv):
    configure_or_exit(config, argv, "experiments.py")
    globals().update(config)
    custom = "custom_" + "_".join(f"{b}-{l}" for b, l in pairs)  # its own name: change the pairs, a new run
    variants = VARIANTS + ([("custom", custom, dict(SPARSECUT, pairs=pairs))] if pairs else [])
    wanted = {v for w in only.split(",") if w for v in GROUPS.get(w, [w])}
    known = {g for g, _, _ in variants} | {n for _, n, _ in variants}
    if wanted - known:
        sys.exit(f"experiments.py: unknown --only {sorted(wanted - known)}; groups and variants: "
                 f"{', '.join(sorted(known | set(GROUPS)))}")
    if jobs < 1:
        sys.exit(f"experiments.py: jobs={jobs} must be >= 1")
    global n_threads  # what run() gives every training
    if jobs > 1 and threads is None:
        n_threads = 1
        print(f"each training: 1 thread (--jobs={jobs}; --threads=N to choose)")
    else:
        n_threads = use_threads(threads, "experiments.py", lambda m: print(f"each training: {m}"))
    todo = [(g, n, o) for g, n, o in variants if not wanted or g in wanted or n in wanted]
    os.makedirs(out, exist_ok=True)
    pool = ThreadPoolExecutor(jobs)  # each worker waits on one train.py process
    try:
        return sweep(pool, todo)
    except KeyboardInterrupt:  # Ctrl-C or a kill: no run starts after it, the running ones stop
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.time() + 3  # Ctrl-C reached them too: they stop by themselves; a kill of the sweep did not
        for child in list(children):
            try:
                child.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                child.terminate()  # SIGTERM: train.py stops as on Ctrl-C, its last checkpoint kept
        for child in list(children):
            child.wait()
        sys.exit("experiments.py: interrupted; the same command continues the sweep (finished runs are "
                 "skipped, cut-off ones resume from their last checkpoint)")


def sweep(pool, todo):
    if any(not STAGE0_KEYS & set(o) for _, _, o in todo):  # stage 0 once per seed, shared by the runs that can
        print("stage 0 (one ViT per seed, shared by the variants):")
        list(pool.map(stage0, seeds))
    runs = {}
    for s in seeds:  # seed by seed: a sweep cut short still has every variant on the first seeds
        for group, name, overrides in todo:
            o = dict(overrides, seed=s, max_iters=max_iters)
            if not STAGE0_KEYS & set(o):  # its own stage 0 otherwise
                o["vit_init"] = os.path.join(out, f"vit-s{s}", "vit.pt")
            d = os.path.join(out, f"{name}-{max_iters}-s{s}")  # a run: variant, steps, seed
            runs[name, s] = pool.submit(run, d, o, d + ".log")
    rows = []
    for group, name, overrides in todo:
        per_seed = [runs[name, s].result() for s in seeds]
        acc = {t: mean_spread([r["vqa"].get(t, float("nan")) for r in per_seed]) for t in TYPES}
        f1 = mean_spread([r["caption_f1"] or 0.0 for r in per_seed])
        two = mean_spread([r.get("by_objects", {}).get("2+ objects", float("nan")) for r in per_seed])
        general = {k: mean_spread([r.get(k, {}).get("overall", float("nan")) for r in per_seed])
                   for k in ("paraphrase", "compositional")}  # held-out wordings, unseen attribute pairs
        gates = per_seed[0].get("gates")
        made = per_seed[0].get("run", {})  # how the first seed's run was made: docs/tables.py checks it
        rows.append({"group": group, "name": name, "acc": acc, "caption_f1": f1, "two_objects": two, **general,
                     "gates": gates, "overrides": overrides, "majority": per_seed[0].get("majority", {}),
                     "config": made.get("config"), "render_version": made.get("render_version")})
    print(f"\ntest accuracy, {max_iters} VQA steps, seeds {seeds} (mean, ±stdev over seeds)")
    print(f"{'group':<9}{'variant':<17}" + "".join(f"{t:>13}" for t in TYPES) + f"{'2 objects':>13}{'caption F1':>13}")
    for r in rows:
        cells = [r["acc"][t] for t in TYPES] + [r["two_objects"], r["caption_f1"]]
        print(f"{r['group']:<9}{r['name']:<17}" + "".join(f"{m:>8.3f}±{s:.2f}" for m, s in cells))
    if markdown:
        cols = TYPES + ["2+ objects", "paraphrase", "compositional"]
        print("\n| variant | seeds | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols))
        for r in rows:
            cells = [r["acc"][t] for t in TYPES] + [r["two_objects"], r["paraphrase"], r["compositional"]]
            print(f"| {r['name']} | {len(seeds)} | " + " | ".join(
                f"{m:.3f} ± {s:.3f}" if len(seeds) > 1 else f"{m:.3f}" for m, s in cells) + " |")
    for r in rows:
        if r["gates"]:
            print(f"learned gates of {r['name']} (seed {seeds[0]}), tanh(g) per ViT block->LLM layer: {r['gates']}")
    write_json(os.path.join(out, "results.json"), {"max_iters": max_iters, "seeds": seeds, "rows": rows,
                                                  "run": provenance("experiments.py", config)})
    if plot:
        draw(rows, os.path.join(out, plot), f"{config_file}, {max_iters} VQA steps, seeds {seeds}")
        print(f"wrote {os.path.join(out, 'results.json')} and {os.path.join(out, plot)}")
    return rows


if __name__ == "__main__":
    exit_in_one_line("experiments.py")  # a kill stops the sweep as Ctrl-C does; a full disk is one line
    main(sys.argv[1:])
