"""
The main job on a machine that is not its own: a short piece of it timed quiet, then beside other
work, as ratios to its quiet time. A benchmark to run on a machine nothing else is using.

    python bench_busy.py                                     # this checkout, 3 rounds (~7 min on 2 cores)
    python bench_busy.py --baseline=../prev --json=out/busy.json     # and another checkout's train.py (~20 min)
    python bench_busy.py --conditions=quiet,torch,loop,torch_nice,loop_nice
    python bench_busy.py --baseline=../prev --baseline_env='OMP_WAIT_POLICY=passive'   # another way out

The piece: `python train.py <piece>` (the main job's recipe, fewer scenes and steps), its data made
first by an untimed run. The conditions: 'quiet'; 'torch', beside a stand-alone matmul loop at
torch's default threads; 'loop', beside a plain Python busy loop; '_nice': the same at nice 19.
Each competitor is started (and computing) before train.py and killed after it, also on Ctrl-C.
OMP_NUM_THREADS is taken out of every program's environment: each runs as `python x.py` would.
Rounds go through every condition (and checkout) in turn, so that drift hits them all alike; a
time is the median over rounds. Goals (issue 29): beside torch at most 2.5x the quiet time, beside
the loop at most 2x, quiet within 5% of the baseline's.
"""
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

from checkpoint import check_result_path, provenance, write_json
from configurator import check_ranges, configure_or_exit

piece = "--n_train=2000 --n_val=100 --n_test=100 --vit_iters=150 --max_iters=200 --eval_interval=10000"
rounds = 3               # each time is the median of this many
conditions = "quiet,torch,loop"  # of: quiet, torch, loop, torch_nice, loop_nice
baseline = ""            # another checkout's folder (e.g. `git worktree add ../prev HEAD~1`): its train.py too
env = ""                 # more environment for this checkout's train.py, e.g. "OMP_WAIT_POLICY=passive"
baseline_env = ""        # ... and for the baseline's
out = "out/bench_busy"   # data, runs and their logs
json = ""                # write the times and ratios here too (e.g. out/busy.json; in results/, docs/tables.py must know it)
config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, str)}

GOALS = {"torch": 2.5, "loop": 2.0}  # the most a condition may cost, as a multiple of the quiet time
MARK = "# bench_busy.py competitor"  # in each competitor's command line: what to clean up
COMPETITORS = {  # each prints 'ready' once it computes
    "torch": f"{MARK}\nimport torch\na = torch.randn(512, 512)\na @ a\nprint('ready', flush=True)\nwhile True:\n    a @ a\n",
    "loop": f"{MARK}\nprint('ready', flush=True)\nwhile True:\n    pass\n",
}
running = []  # competitors alive now


def clean_env(extra=""):
    e = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    e.update(kv.split("=", 1) for kv in shlex.split(extra))
    return e


def start(condition):
    """The competitor of a condition ('torch', 'loop_nice', ...), computing; None for 'quiet'."""
    kind, _, nice = condition.partition("_")
    if kind == "quiet":
        return None
    p = subprocess.Popen([sys.executable, "-c", COMPETITORS[kind]], stdout=subprocess.PIPE, text=True, env=clean_env(),
                         preexec_fn=(lambda: os.nice(19)) if nice else None)
    running.append(p)
    if p.stdout.readline().strip() != "ready":
        sys.exit(f"bench_busy.py: the {kind} competitor did not start")
    time.sleep(1.0)  # its threads up and spinning, as another program's would be
    return p


def stop(p):
    if p is not None:
        p.kill()
        p.wait()
        running.remove(p)


def train(checkout, name, args, log):
    """Runs `python train.py <piece> args` in checkout (name: 'this' or 'baseline'); its output goes to
    log. Returns its seconds."""
    cmd = [sys.executable, "train.py"] + shlex.split(piece) + args
    t0 = time.perf_counter()
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=checkout, stdout=f, stderr=subprocess.STDOUT,
                           env=clean_env(env if name == "this" else baseline_env))
    seconds = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"bench_busy.py: train.py of {name} failed (exit {r.returncode}); see {log}")
    return seconds


def what_it_said(log):
    """(the thread line train.py printed or None, the highest MFU its progress bar showed or None)."""
    text = open(log, errors="replace").read()
    threads = re.search(r"^(\d+ threads? \(.*\))$", text, re.M)
    mfu = [float(m) for m in re.findall(r"mfu=([0-9.]+)%", text)]
    return threads and threads.group(1), max(mfu, default=None)


def commit_of(checkout):
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main(argv):
    configure_or_exit(config, argv, "bench_busy.py")
    globals().update(config)
    check_ranges(config, "bench_busy.py", at_least_1="rounds")
    conds = [c for c in conditions.split(",") if c]
    known = ["quiet", "torch", "loop", "torch_nice", "loop_nice"]
    if not conds or set(conds) - set(known):
        sys.exit(f"bench_busy.py: conditions={conditions!r}: use some of {','.join(known)}")
    here = os.path.dirname(os.path.abspath(__file__))
    checkouts = {"this": here}
    if baseline:
        if not os.path.isfile(os.path.join(baseline, "train.py")):
            sys.exit(f"bench_busy.py: baseline={baseline!r} has no train.py: give a checkout's folder")
        checkouts["baseline"] = os.path.abspath(baseline)
    if json:
        try:
            check_result_path(json)
        except ValueError as e:
            sys.exit(f"bench_busy.py: json={json!r}: {e}")
    root = os.path.abspath(out)
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):  # killed, or the terminal closed:
        signal.signal(sig, lambda *a: sys.exit("bench_busy.py: stopped"))    # clean up as on Ctrl-C
    times = {(n, c): [] for n in checkouts for c in conds}
    said = {}
    try:
        for name, checkout in checkouts.items():  # the data first, out of the timing
            print(f"{name}: {checkout} at {commit_of(checkout)}: making the data", flush=True)
            train(checkout, name, [f"--data_dir={root}/data-{name}", f"--out_dir={root}/run-{name}", "--vit_iters=0",
                                   "--max_iters=0"], os.path.join(root, "logs", f"{name}-data.log"))
        for r in range(rounds):
            for name, checkout in checkouts.items():
                for c in conds:
                    run_dir, log = os.path.join(root, f"run-{name}"), os.path.join(root, "logs", f"{name}-{c}-{r}.log")
                    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, nothing moved aside
                    p = start(c)
                    try:
                        s = train(checkout, name, [f"--data_dir={root}/data-{name}", f"--out_dir={run_dir}"], log)
                    finally:
                        stop(p)
                    times[name, c].append(s)
                    said[name, c] = what_it_said(log)
                    print(f"round {r + 1}/{rounds} {name:<8} {c:<10} {s:7.1f} s  {said[name, c][0] or ''}", flush=True)
                    time.sleep(1.0)  # let the machine settle
    except KeyboardInterrupt:
        sys.exit("bench_busy.py: interrupted; train.py and the competitors are stopped")
    finally:
        for p in list(running):
            stop(p)
    rows = []
    for name, checkout in checkouts.items():
        quiet = statistics.median(times[name, "quiet"]) if "quiet" in conds else None
        for c in conds:
            med = statistics.median(times[name, c])
            rows.append({"checkout": name, "folder": checkout, "commit": commit_of(checkout), "condition": c,
                         "env": env if name == "this" else baseline_env,
                         "seconds": [round(s, 2) for s in times[name, c]], "median": round(med, 2),
                         "ratio_to_quiet": quiet and round(med / quiet, 3), "goal": GOALS.get(c),
                         "threads": said[name, c][0], "max_mfu_percent": said[name, c][1]})
    print(f"\npython train.py {piece} (data made first); medians of {rounds} round(s); ratios to the same checkout's quiet time")
    print(f"{'checkout':<10}{'commit':<16}{'condition':<12}{'seconds':>8}{'x quiet':>9}{'goal':>7}{'max MFU':>9}  threads")
    for row in rows:
        ratio = "" if row["ratio_to_quiet"] is None else f"{row['ratio_to_quiet']:.2f}"
        goal = f"<={row['goal']}" if row["goal"] else ""
        mfu = "" if row["max_mfu_percent"] is None else f"{row['max_mfu_percent']:.0f}%"
        print(f"{row['checkout']:<10}{row['commit']:<16}{row['condition']:<12}{row['median']:>8.1f}{ratio:>9}{goal:>7}"
              f"{mfu:>9}  {row['threads'] or ''}")
    summary = {}
    if baseline and "quiet" in conds:
        summary["quiet_this_over_baseline"] = round(statistics.median(times["this", "quiet"]) /
                                                    statistics.median(times["baseline", "quiet"]), 3)
        print(f"quiet, this / baseline: {summary['quiet_this_over_baseline']:.3f} (goal <= 1.05)")
    if json:
        write_json(json, {"piece": piece, "rounds": rounds, "rows": rows, **summary,
                          "run": provenance("bench_busy.py", config)})
        print(f"wrote {json}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
