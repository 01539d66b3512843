"""
Every table of numbers in README.md and docs/*.md is made here, from the result files in results/
(the JSON that train.py, experiments.py, bench.py and probe.py wrote, copied there as they came).

    python docs/tables.py            # rewrite the tables and quoted numbers in README.md and docs/*.md
    python docs/tables.py --check    # exit 1 if a page differs from what results/ gives (tests do this)

A page marks what is generated, so a hand edit cannot outlive the next run:
    <!-- table: NAME -->                    a table: the lines up to <!-- /table --> are rewritten
    <!-- v: NAME -->.971<!-- /v -->          a number in a sentence (NAME as in values())
Which result file a table reads, and the command that made it, is in TABLES and results/README.md;
whether each was made by today's recipe and data, docs/check_results.py (both modes fail if not).
"""
import glob
import json
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_results import LLM_PROBED, RESULTS, problems  # noqa: E402  (is each result today's?)

PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
TYPES = ["colour", "shape", "count", "position", "texture"]
COLUMN_NAMES = {"absent": "nothing there"}  # headline keys as the tables head their columns


def load(name):
    with open(os.path.join(RESULTS, name + ".json")) as f:
        return json.load(f)


def family(prefix):
    """{seed: results} of results/<prefix>.json (its seed from its settings) and <prefix>_s<seed>.json."""
    out = {}
    if os.path.exists(os.path.join(RESULTS, prefix + ".json")):
        r = load(prefix)
        out[r["run"]["config"]["seed"]] = r
    for path in glob.glob(os.path.join(RESULTS, prefix + "_s*.json")):
        seed = os.path.basename(path)[len(prefix) + 2:-5]
        if seed.isdigit():
            out[int(seed)] = load(os.path.basename(path)[:-5])
    return dict(sorted(out.items()))


def f3(x):
    return "-" if x is None else f"{x:.3f}".replace("0.", ".", 1)


def pm(xs):
    return f"{f3(statistics.mean(xs))} ± {f3(statistics.stdev(xs))}" if len(xs) > 1 else f3(xs[0])


def minutes(s):
    return f"{int(s // 60)} min {int(round(s % 60)):02d} s"


def row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def headline(r):
    """The numbers one train.py run is judged by."""
    return {**{t: r["vqa"][t] for t in TYPES + ["overall"]}, "absent": r["vqa"].get("absent"), **r.get("by_objects", {}),
            "paraphrase": r.get("paraphrase", {}).get("overall"), "compositional": r.get("compositional", {}).get("overall"),
            "caption F1": r.get("caption_f1")}


def meets_targets(h):
    """A seed worth asking, the targets docs/FINDINGS.md holds every seed to: overall >= .93, every type
    and 2+ objects >= .85, the held-out wordings (paraphrase) within .05 of the templates."""
    return (h["overall"] >= .93 and min(h[t] for t in TYPES) >= .85 and h.get("2+ objects", 1) >= .85
            and abs(h["overall"] - h["paraphrase"]) <= .05)


def made(r):
    run = r["run"]
    return f"`{run['command']}` at commit {run['commit']}, {run['threads']} thread(s), {run['machine']}"


# -----------------------------------------------------------------------------
# the tables

def table_main():
    r = load("main")
    h, m = headline(r), r["majority"]
    lines = [row(["", "accuracy", "majority answer"]), row(["---", "---", "---"])]
    lines += [row([t, f3(h[t]), f3(m.get(t))]) for t in TYPES]
    lines += [row(["**overall**", f"**{f3(h['overall'])}**", f3(m.get("overall"))])]
    lines += [row(["nothing there (own row, not in overall)", f3(h["absent"]), f3(m.get("absent"))])] if h["absent"] is not None else []
    lines += [row([k, f3(h[k]), ""]) for k in ("1 object", "2+ objects") if k in h]
    lines += [row(["paraphrase (held-out wordings)", f3(h["paraphrase"]), ""]),
              row(["compositional (unseen colour-shape pairs)", f3(h["compositional"]), ""]),
              row(["caption F1", f3(h["caption F1"]), ""])]
    return lines + ["", f"From results/main.json: {made(r)}, {minutes(r['run']['seconds'])} wall, data generation included."]


def table_seeds(prefix="main", note=None):
    """A row per seed of one recipe; note(runs): the footnote, if the seeds did not all run one way."""
    runs = family(prefix)
    if not runs:
        raise FileNotFoundError(f"no results/{prefix}_s*.json: see results/README.md for the command")
    per = {s: headline(r) for s, r in runs.items()}
    cols = ["overall", "2+ objects", "paraphrase", "compositional", "shape", "position"]
    cols += ["absent"] if all(h["absent"] is not None for h in per.values()) else []
    lowest = {s: min(TYPES, key=h.get) for s, h in per.items()}  # the targets hold every type to .85
    lines = [row(["seed", "threads"] + [COLUMN_NAMES.get(c, c) for c in cols] + ["lowest type"]),
             row(["---"] * (len(cols) + 3))]
    lines += [row([s, runs[s]["run"]["threads"]] + [f3(h.get(c)) for c in cols] + [f"{f3(h[lowest[s]])} {lowest[s]}"])
              for s, h in per.items()]
    lines += [row(["mean ± sd", ""] + [pm([h[c] for h in per.values()]) for c in cols] + [""])]
    first = load(prefix) if os.path.exists(os.path.join(RESULTS, prefix + ".json")) else runs[min(runs)]
    return lines + ["", note(runs) if note else f"From results/{prefix}*.json: {made(first)}; for the other seeds the "
                    "same command with `--seed=S` and an out_dir of its own (results/README.md), with the threads of the column."]


def table_experiments(name):
    """A sweep of experiments.py: accuracy per type, mean ± sd over its seeds."""
    r = load(name)
    cols = TYPES + ["overall"]
    lines = [row(["variant"] + cols + ["2+ objects"]), row(["---"] * (len(cols) + 2))]
    for v in r["rows"]:
        cells = [v["acc"][t] for t in cols] + [v["two_objects"]]
        lines.append(row([v["name"]] + [f"{f3(m)} ± {f3(s)}" if len(r["seeds"]) > 1 else f3(m) for m, s in cells]))
    return lines + ["", f"From results/{name}.json: `{r['run']['command']}` at commit {r['run']['commit']}, "
                        f"seeds {r['seeds']}, {r['max_iters']} text steps."]


def table_bench():
    r = load("bench")
    base = r["rows"][0]
    lines = [row(["variant", "context", "MFLOP per sample (ViT / fusion / LLM)", "train step", "prefill",
                  "decode / token"]), row(["---"] * 6)]
    for v in r["rows"]:
        lines.append(row([v["variant"], v["context"], f"{v['flops_vit'] / 1e6:.0f} / {v['flops_fusion'] / 1e6:.0f} / "
                          f"{v['flops_llm'] / 1e6:.0f}", *(f"{v[k] / base[k]:.2f}x" for k in
                                                             ("train_step_s", "prefill_s", "decode_token_s"))]))
    return lines + ["", f"From results/bench.json: `{r['run']['command']}` at commit {r['run']['commit']}, "
                        f"{r['run']['threads']} thread(s); ratios to the baseline, medians of {r['config']['repeats']}; "
                        f"the KV cache generates {r['config']['gen_tokens']} tokens {base['kv_speedup']:.1f}x faster "
                        f"than recomputing."]


def probed(p):
    """A probe's cell: held-out accuracy (the share of the variance the attribute explains)."""
    return f"{f3(p['acc'])} ({100 * p['var_share']:.0f}%)"


def table_probes(names=("probe_main", "probe_detail"), keys=("low/colour", "crops/texture", "low/shape")):
    """Two ViTs side by side: per level, probe accuracy (share of variance) for a few attributes."""
    rs = [load(n) for n in names]
    lines = [row(["ViT level"] + [f"{k}, {n[6:]}" for k in keys for n in names]), row(["---"] * (1 + len(keys) * len(names)))]
    for level in rs[0]["levels"]:
        tag = f"{level} (main)" if str(level) == str(rs[0].get("main_level")) else level
        lines.append(row([tag] + [probed(r["levels"][level][k]) for k in keys for r in rs]))
    cmds = "; ".join(f"`{r['run']['command']}` (commit {r['run']['commit']})" for r in rs)
    return lines + ["", f"From results/{names[0]}.json and {names[1]}.json: {cmds}. "
                        "Held-out accuracy of a linear probe on object tokens (in brackets: the share of their variance "
                        "the attribute explains); `probe.py` prints every attribute."]


def table_llm():
    """What reaches the LLM: per layer, a probe on its stream at the image positions, per variant."""
    rs = [load(f"probe_natural_llm_{v}") for v in LLM_PROBED]
    keys = ("image/colour", "image/texture")
    lines = [row(["LLM stream"] + [f"{k[6:]}, {v}" for k in keys for v in LLM_PROBED]),
             row(["---"] * (1 + len(keys) * len(rs)))]
    for layer in rs[0]["llm"]:
        lines.append(row([f"{layer} (as layer {layer[3:]} reads it)" if layer != "out" else "out (after the last layer)"] +
                         [probed(r["llm"][layer][k]) for k in keys for r in rs]))
    cmd = rs[0]["run"]["command"].replace(LLM_PROBED[0], "V")
    return lines + ["", f"From results/probe_natural_llm_V.json: `{cmd}` for V = {', '.join(LLM_PROBED)} "
                        f"(commit {rs[0]['run']['commit']}; seed 0, 5000 steps). A linear "
                        "probe on the low view's object positions (each fused token also holds its crops' tokens), "
                        "held-out accuracy (share of variance); a shortcut into layer L is added before L reads it."]


def table_silhouettes(seeds=(0, 1, 2), keys=("low/shape", "crops/shape")):
    """Stage 0 with and without silhouette views: the main level's shape probe on compositional scenes."""
    pair = {s: (load(f"probe_comp_base_s{s}"), load(f"probe_comp_sil_s{s}")) for s in seeds}
    main = lambda r: r["levels"][str(r["main_level"])]
    lines = [row(["seed"] + [f"{k}, {w}" for k in keys for w in ("stage 0 of 2400 steps", "+ silhouettes")]),
             row(["---"] * (1 + 2 * len(keys)))]
    lines += [row([s] + [f3(main(r)[k]["acc"]) for k in keys for r in rs]) for s, rs in pair.items()]
    lines.append(row(["mean ± sd"] + [pm([main(rs[i])[k]["acc"] for rs in pair.values()]) for k in keys for i in (0, 1)]))
    base, sil = pair[seeds[0]]
    return lines + ["", f"From results/probe_comp_base_s*.json and probe_comp_sil_s*.json: for seed 0, "
                        f"`python train.py --max_iters=0 --seed=0 --vit_iters=2400 --out_dir=out/baseS0` (stage 0 only) and the same with "
                        f"`--vit_silhouettes=0.5 --out_dir=out/silS0`, then `{base['run']['command']}` and likewise "
                        f"on out/silS0; seeds 1 and 2 likewise (commit {base['run']['commit']}); chance "
                        f"{f3(base['chance']['low/shape'])} / {f3(base['chance']['crops/shape'])}."]


def table_unseen_pairs(seeds=(0, 1, 2)):
    """The same probes, split by what is new about the object, per stage 0: a train-fitted reader fails where it sees it."""
    kinds = [(v, k) for v in ("low", "crops") for k in ("colour pair new", "only texture pair new", "neither")]
    lines = [row(["stage 0 (3 seeds)"] + [f"{v}: {k}" for v, k in kinds]), row(["---"] * (1 + len(kinds)))]
    for name, prefix in (("1200 steps", "it1200"), ("2400 steps", "base"), ("2400 steps + silhouettes", "sil"),
                         ("4800 steps (today)", "it4800")):
        rs = [load(f"probe_comp_{prefix}_s{s}")["unseen_pairs"] for s in seeds]
        lines.append(row([name] + [pm([r[v][k] for r in rs]) for v, k in kinds]))
    return lines + ["", "From results/probe_comp_*_s*.json (`probe.py --split=compositional` prints it): stage 0 only, "
                        "as the table above, and with `--vit_iters=1200` or `4800` (`--out_dir=out/it1200S0` ..., then "
                        "the same probe into probe_comp_it1200_s0.json ...). The main level's shape probe, fitted on "
                        "training scenes, on the object tokens of compositional scenes by what is new about their "
                        "object (colour pair new: with or without a new texture pair)."]


COMPOSITIONAL_VARIANTS = [("main job: 2 shortcuts, one fusion", "main"), ("2 shortcuts, a fusion each", "own"),
                          ("4 shortcuts, a fusion each", "d4own"),
                          ("4 shortcuts, a fusion each; crops told shape only", "d4own_shapecrops"),
                          ("2 shortcuts, a fusion each; a main level blind to colour and texture", "blind_own")]


def table_variants(variants, seeds, note, cols=("compositional", "overall", "absent", "2+ objects", "paraphrase")):
    """Variants of one recipe on the same stage-0 ViTs (paired by seed), a row each; note(seeds): the footnote."""
    lines = [row(["variant", f"compositional, seeds {' / '.join(map(str, seeds))}"] + [COLUMN_NAMES.get(c, c) for c in cols]),
             row(["---"] * (2 + len(cols)))]
    for name, prefix in variants:
        h = [headline(family(prefix)[s]) for s in seeds]
        lines.append(row([name, " / ".join(f3(x["compositional"]) for x in h)] + [pm([x[c] for x in h]) for c in cols]))
    return lines + ["", note(seeds)]


def fusions_note(seeds):
    r = family("d4own")[seeds[0]]
    q, b = family("d4own_shapecrops")[seeds[0]], family("blind_own")[seeds[0]]
    return (f"From results/main_s*.json, own_s*.json, d4own_s*.json, d4own_shapecrops_s*.json and "
            f"blind_own_s*.json: for seed {seeds[0]}, `{r['run']['command']}` (commit {r['run']['commit']}; "
            f"`--vit_init`: the stage-0 ViT of main_s{seeds[0]}, so these variants read the same ViT), and "
            f"without `--density=4` for own_s{seeds[0]}; with a stage 0 of their own, "
            f"`{q['run']['command']}` (commit {q['run']['commit']}) and `{b['run']['command']}` (commit "
            f"{b['run']['commit']}); the other seeds likewise.")


BLIND_VARIANTS = [("4 shortcuts, U order (config/blind_main.py)", "blind_main"),
                  ("4 shortcuts, parallel order", "blind_parallel4"), ("2 shortcuts, parallel order", "blind_parallel2"),
                  ("blocks 1 and 0 only, before layers 1 and 2", "blind_detail"),
                  ("4 shortcuts, U order; two 'nothing there' questions a scene", "blind_absent2"),
                  ("the same, 3400 text steps", "blind_absent2_3400"),
                  ("the same on the ViTs of blind_own: the invariance term on every view", "blind_whole_absent2"),
                  ("the same, 3000 text steps", "blind_whole_absent2_3000")]


def blind_note(seeds):
    runs = [family(prefix)[seeds[0]]["run"] for _, prefix in BLIND_VARIANTS[1:]]
    cmds, r = [f"`{run['command']}`" for run in runs], runs[0]
    return (f"From results/blind_main_s*.json and " + ", ".join(f"{p}_s*.json" for _, p in BLIND_VARIANTS[1:]) +
            f": for seed {seeds[0]}, " + ", ".join(cmds) + f" (commit {r['commit']}, {r['threads']} thread each; "
            f"`--vit_init`: the stage-0 ViT of blind_main_s{seeds[0]}, so every row but the last two reads the same ViT; "
            f"those read that of blind_own_s{seeds[0]}, which ran as out/inv_s{seeds[0]}); the other seeds likewise.")


def attributes_note(runs):
    """config/attributes.py's seeds: some ran their text stages on a stage-0 ViT made before (blind_own_sS)."""
    reused = [s for s, r in runs.items() if r["run"]["config"]["vit_init"]]
    whole = [s for s in runs if s not in reused]
    one, other = runs[reused[0]]["run"], runs[whole[0]]["run"]
    return (f"From results/blind_whole_absent2*.json. Seeds {', '.join(map(str, reused))}: the text stages only, "
            f"on the stage-0 ViT of blind_own_sS (the same stage-0 settings; results/README.md), e.g. `{one['command']}` "
            f"(commit {one['commit']}); seeds {', '.join(map(str, whole))}: whole runs with a stage 0 of their own, "
            f"e.g. `{other['command']}` (commit {other['commit']}). Today's command for a seed: "
            "`python train.py config/attributes.py --seed=S`; threads as in the column.")


def table_busy():
    r, q = load("busy"), load("busy_quiet")
    lines = [row(["beside", "seconds (median)", "x quiet", "goal", "threads chosen", "highest MFU shown"]), row(["---"] * 6)]
    for v in r["rows"]:
        lines.append(row([v["condition"], f"{v['median']:.1f}", f"{v['ratio_to_quiet']:.2f}x",
                          f"<= {v['goal']}x" if v["goal"] else "", (v["threads"] or "").split(" (")[0],
                          "" if v["max_mfu_percent"] is None else f"{v['max_mfu_percent']:.0f}%"]))
    base = next(v for v in q["rows"] if v["checkout"] == "baseline")
    return lines + ["", f"From results/busy.json: `{r['run']['command']}` at commit {r['run']['commit']}, alone on "
                        f"{r['run']['machine']}: `python train.py {r['piece']}` (a short piece of the main job), medians "
                        f"of {r['rounds']} rounds; 'torch' is a stand-alone matmul loop at torch's default threads, 'loop' a "
                        f"Python busy loop, both started first. Quiet, against the commit before threads were chosen "
                        f"({base['commit']}): {q['quiet_this_over_baseline']:.3f}x (results/busy_quiet.json: "
                        f"`{q['run']['command']}`)."]


TABLES = {"main": table_main, "seeds": table_seeds, "quicklab": lambda: table_seeds("quicklab"),
          "blind_main": lambda: table_seeds("blind_main"),
          "attributes": lambda: table_seeds("blind_whole_absent2", attributes_note),
          "bench": table_bench, "busy": table_busy, "probes": table_probes,
          "detail": lambda: table_experiments("detail"), "default": lambda: table_experiments("default"),
          "natural_2000": lambda: table_experiments("natural_2000"),
          "natural_5000": lambda: table_experiments("natural_5000"),
          "probes_natural": lambda: table_probes(("probe_main", "probe_natural"),
                                                 ("low/colour", "crops/colour", "crops/texture")),
          "natural_llm": table_llm, "silhouettes": table_silhouettes,
          "unseen_pairs": table_unseen_pairs, "fusions": lambda: table_variants(COMPOSITIONAL_VARIANTS, (1, 2, 3), fusions_note),
          "blind_variants": lambda: table_variants(BLIND_VARIANTS, (1, 2, 4), blind_note),
          "probes_compositional": lambda: table_probes(("probe_compositional", "probe_compositional_fit"),
                                                       ("low/shape", "crops/shape"))}


def values():
    """Numbers quoted in sentences, by name."""
    out = {}
    if os.path.exists(os.path.join(RESULTS, "main.json")):
        r = load("main")
        out.update({f"main.{k.replace('2+ objects', 'two').replace('1 object', 'one').replace('caption F1', 'f1')}": f3(v)
                    for k, v in headline(r).items()})
    # experiments.py sweeps: <name>.<variant>.<type>, the mean over seeds
    for name in ("detail", "default", "natural_2000", "natural_5000"):
        if os.path.exists(os.path.join(RESULTS, name + ".json")):
            for v in load(name)["rows"]:
                out.update({f"{name}.{v['name']}.{t}": f3(m) for t, (m, s) in v["acc"].items()})
                out.update({f"{name}.{v['name']}.{t}_pm": f"{f3(m)} ± {f3(s)}" for t, (m, s) in v["acc"].items()})
                out[f"{name}.{v['name']}.two"] = f3(v["two_objects"][0])
    for prefix in ("main", "quicklab", "blind_main", "blind_absent2", "blind_whole_absent2", "blind_fast", "blind_whole2400",
                   "blind_sg", "blind_sg2800", "blind_lr4_3000", "blind_fast3000",
                   "blind_adversary"):
        runs = family(prefix)
        if runs:
            ov = [r["vqa"]["overall"] for r in runs.values()]
            out[f"{prefix}_seeds.n"] = str(len(runs))
            out[f"{prefix}_seeds.overall"] = f"{f3(min(ov))}-{f3(max(ov))}"
            out[f"{prefix}_seeds.mean"] = pm(ov)
            comp = [r["compositional"]["overall"] for r in runs.values()]
            out[f"{prefix}_seeds.compositional"] = f"{f3(min(comp))}-{f3(max(comp))}"
            out[f"{prefix}_seeds.compositional_pm"] = pm(comp)
            good = [meets_targets(headline(r)) for r in runs.values()]
            out[f"{prefix}_seeds.good"] = f"{sum(good)} of {len(good)}"
            if os.path.exists(os.path.join(RESULTS, prefix + ".json")):
                out[f"{prefix}.time"] = minutes(load(prefix)["run"]["seconds"])
            absent = [headline(r)["absent"] for r in runs.values()]
            if None not in absent:
                out[f"{prefix}_seeds.absent"] = f"{pm(absent)} (lowest {f3(min(absent))})"
    for path in sorted(glob.glob(os.path.join(RESULTS, "probe_*.json"))):  # <file>.low_colour ...: the main level's probes
        name = os.path.basename(path)[:-5]
        r = load(name)
        if "main_level" in r:
            out.update({f"{name}.{k.replace('/', '_')}": f3(p["acc"])
                        for k, p in r["levels"][str(r["main_level"])].items()})
    for name in ("attributes_text_only",):  # a timing: config/attributes.py's text stage, with no stage 0
        if os.path.exists(os.path.join(RESULTS, name + ".json")):
            out[f"{name}.time"] = minutes(load(name)["run"]["seconds"])
    return out


def render(text):
    """The page with every marked table and number made anew."""
    def table(m):
        name = m.group(1)
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        return f"{m.group(0).split(chr(10))[0]}\n" + "\n".join(TABLES[name]()) + "\n<!-- /table -->"
    text = re.sub(r"<!-- table: (\w+) -->\n.*?<!-- /table -->", table, text, flags=re.S)
    vals = values()

    def value(m):
        if m.group(1) not in vals:
            raise KeyError(f"unknown value {m.group(1)!r}; known: {', '.join(sorted(vals))}")
        return f"<!-- v: {m.group(1)} -->{vals[m.group(1)]}<!-- /v -->"
    return re.sub(r"<!-- v: ([\w.]+) -->.*?<!-- /v -->", value, text)


def main(argv):
    check = "--check" in argv
    stale = []
    for page in PAGES:
        text = open(page).read()
        new = render(text)
        if new != text:
            stale.append(os.path.relpath(page, ROOT))
            if not check:
                with open(page, "w") as f:
                    f.write(new)
    bad = problems(RESULTS)
    for p in bad:
        print(f"tables.py: {p}")
    if check and stale:
        print(f"tables.py: {', '.join(stale)} differ from what results/ gives: run python docs/tables.py")
    elif stale:
        print(f"rewrote {', '.join(stale)}")
    return 1 if bad or (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
