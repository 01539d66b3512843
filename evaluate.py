"""
Evaluation shared by train.py, sample.py and the experiments: greedy answers with the KV cache,
exact-match accuracy per question type, caption F1, and the machine's matmul peak for MFU.
Run on its own, it scores a trained model again and says where its answers go wrong:

    python evaluate.py                      # out/ckpt.pt on its test split: the table, then the errors
    python evaluate.py --split=compositional --out_dir=out/lab
    python evaluate.py --split=train --limit=1000   # the same table on scenes it trained on
    python evaluate.py --paraphrase=True     # the test scenes' held-out wordings, accuracy per wording
    python evaluate.py --ablate=crops        # the same table with a path into the LLM removed
"""
import collections
import math
import os
import re
import sys
import time

import torch

from data.batches import to_float
from data.metrics import OWN_ROW, caption_f1, majority_baseline, normalise, vqa_accuracy
from data.prompt import answer_of, caption_prompt, vqa_prompt
from data.shapes import questions as Q
from data.shapes import render as R


@torch.no_grad()
def evaluate(model, tok, split, question_types, device, limit=None, captions=None, chunk=200,
             max_answer_tokens=8, max_caption_tokens=64, qa_key="qa", keep_rows=False, remove=()):
    """Greedy answers for the questions of the first `limit` scenes (all if None), and captions for
    the first `captions` scenes (all if None, none if 0). qa_key: the records' list of questions
    to ask ('qa_paraphrase': the test split's held-out wordings); remove: paths taken away
    (SparseCut.fuse). Returns a dict of metrics, and with keep_rows every question as {"scene",
    "type", "question", "answer", "pred"} in "rows"."""
    was_training = model.training
    model.eval()
    n = len(split.records) if limit is None else min(limit, len(split.records))
    def want(q, r):  # own data (no scene graph) keeps every question
        return question_types is None or "objects" not in r or q["type"] in question_types

    preds, answers, types, n_obj, f1s, rows = [], [], [], [], [], []
    n_cap = n if captions is None else min(captions, n)
    for start in range(0, n, chunk):
        recs = split.records[start:start + chunk]
        feats = model.encode(to_float(split.images[start:start + len(recs)]).to(device))  # once per scene
        jobs = []  # (scene in chunk, question, answer, type)
        for i, r in enumerate(recs):
            jobs += [(i, q["question"], q["answer"], q["type"]) for q in r.get(qa_key, []) if want(q, r)]
        out = generate_grouped(model, tok, feats, [(i, vqa_prompt(q)) for i, q, _, _ in jobs], device, max_answer_tokens,
                               remove)
        for (i, q, a, t), p in zip(jobs, out):
            preds.append(p), answers.append(a), types.append(t)
            n_obj.append(len(recs[i].get("objects", [])))
            if keep_rows:
                rows.append({"scene": start + i, "type": t, "question": q, "answer": a, "pred": p})
        caps = [i for i in range(len(recs)) if start + i < n_cap and recs[i].get("caption")]
        out = generate_grouped(model, tok, feats, [(i, caption_prompt()) for i in caps], device, max_caption_tokens, remove)
        f1s += [caption_f1(p, recs[i]["objects"])["f1"] for i, p in zip(caps, out)]
    model.train(was_training)
    records = split.records[:n]
    results = {"vqa": vqa_accuracy(preds, answers, types), "n": dict(collections.Counter(types)),
               "majority": majority_baseline([dict(r, qa=[q for q in r.get(qa_key, []) if want(q, r)]) for r in records]),
               "caption_f1": sum(f1s) / len(f1s) if f1s else None,
               "samples": [{"type": t, "answer": a, "pred": p} for t, a, p in list(zip(types, answers, preds))[:10]]}
    if any(n_obj):  # binding errors hide everything else: split by objects per scene
        by = collections.defaultdict(list)
        for p, a, k, t in zip(preds, answers, n_obj, types):
            if t not in OWN_ROW:  # as 'overall'
                by["1 object" if k == 1 else "2+ objects"].append(p.strip().lower() == a.strip().lower())
        results["by_objects"] = {k: sum(v) / len(v) for k, v in sorted(by.items())}
    results["n"]["overall"] = sum(t not in OWN_ROW for t in types)
    if keep_rows:
        results["rows"] = rows
    return results


@torch.no_grad()
def val_report(model, tok, examples, split, question_types, device, limit, say=print, batch=64):
    """train.py's periodic evaluation: the teacher-forced loss over `examples` (data.batches.Examples
    of split's first scenes) and greedy accuracy per type on the first `limit` scenes, printed in
    one line. Returns the overall accuracy."""
    was_training = model.training
    model.eval()
    losses = []
    for i in range(0, len(examples.scene), batch):
        idx, tgt, scene = examples.batch(torch.arange(i, min(i + batch, len(examples.scene))))
        losses.append(model(to_float(split.images[scene.numpy()]).to(device), idx.to(device), tgt.to(device))[1].item())
    model.train(was_training)
    res = evaluate(model, tok, split, question_types, device, limit=limit, captions=32)
    f1 = "" if res["caption_f1"] is None else f" caption_f1 {res['caption_f1']:.2f}"
    say(f"\nval loss {sum(losses) / len(losses):.3f} | " + " ".join(f"{k} {v:.2f}" for k, v in res["vqa"].items()) + f1)
    return res["vqa"]["overall"]


def test_results(model, tok, ds, question_types, device):
    """train.py's final table: the test split, its held-out wordings and attribute pairs, and the
    learned gates (which shortcuts the model chose to use) where it has them."""
    t0 = time.time()
    results = evaluate(model, tok, ds.test, question_types, device, limit=None, captions=None)
    results.update(generalisation(model, tok, ds, question_types, device))  # "paraphrase", "compositional"
    results["eval_seconds"] = round(time.time() - t0, 1)
    if model.gates is not None:
        results["gates"] = {f"{b}->{l}": round(math.tanh(g), 3) for (b, l), g in zip(model.shortcuts, model.gates.tolist())}
        print("learned gates tanh(g), ViT block->LLM layer: " + " ".join(f"{k} {v:+.3f}" for k, v in results["gates"].items()))
    return results


def generalisation(model, tok, ds, question_types, device):
    """Overall accuracy on the test scenes' held-out wordings and on the compositional split (unseen
    attribute pairs), where the data have them: {"paraphrase": {"overall": acc}, ...}. No captions."""
    out = {}
    if any("qa_paraphrase" in r for r in ds.test.records):
        res = evaluate(model, tok, ds.test, question_types, device, captions=0, qa_key="qa_paraphrase")
        out["paraphrase"] = {"overall": res["vqa"].get("overall", 0.0)}
    if getattr(ds, "compositional", None) is not None:
        res = evaluate(model, tok, ds.compositional, question_types, device, captions=0)
        out["compositional"] = {"overall": res["vqa"].get("overall", 0.0)}
    return out


def generate_grouped(model, tok, feats, jobs, device, max_new_tokens, remove=()):
    """jobs: [(scene index into feats, prompt)] -> decoded answers. Prompts of equal token length
    are batched together, so no padding ever shifts the text positions."""
    groups = collections.defaultdict(list)
    for j, (i, prompt) in enumerate(jobs):
        ids = tok.encode_ordinary(prompt)
        groups[len(ids)].append((j, i, ids))
    out = [None] * len(jobs)
    budget = model.llm.config.block_size - model.n_image_tokens
    for T, members in groups.items():
        scenes = torch.tensor([i for _, i, _ in members])
        idx = torch.tensor([ids for _, _, ids in members], device=device)    # (B, T)
        f = {b: v[scenes] for b, v in feats.items()}
        gen = model.generate(None, idx, min(max_new_tokens, budget - T), temperature=0.0,
                             stop_token=tok.eot_token, feats=f, remove=remove)[:, T:]
        for (j, _, _), row in zip(members, gen.tolist()):
            out[j] = answer_of(tok, row)
    return out


def format_table(results):
    """The test table: accuracy per type with n and the majority baseline beside it."""
    v, n, m = results["vqa"], results["n"], results["majority"]
    lines = [f"{'type':<14}{'accuracy':>9}{'n':>7}{'majority':>10}"]
    for t in sorted(k for k in v if k != "overall") + ["overall"]:
        lines.append(f"{t:<14}{v[t]:>9.3f}{n.get(t, 0):>7}{m.get(t, float('nan')):>10.3f}")
    for k, a in results.get("by_objects", {}).items():
        lines.append(f"{k:<14}{a:>9.3f}")
    for k in ("paraphrase", "compositional"):  # held-out wordings, unseen attribute pairs
        if k in results:
            lines.append(f"{k:<14}{results[k]['overall']:>9.3f}")
    if results.get("caption_f1") is not None:
        lines.append(f"{'caption F1':<14}{results['caption_f1']:>9.3f}")
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# where the answers go wrong (shapes data: every question is about a scene graph)

# a description's words -> the attribute each names ('large' -> 'size', 'red' -> 'colour', ...)
VALUES = {w: k for k, ws in (("size", R.SIZES), ("colour", R.COLOURS), ("texture", R.TEXTURES), ("shape", R.SHAPES))
          for w in ws}


def asked_about(question, objects):
    """(the object a question names, how it names it) or (None, None): 'short' ('what shape is at
    the top left?'), 'position' ('the object at the top left') or 'description: size+shape' ('the
    large circle'; the attributes it uses)."""
    q = question.lower().rstrip("?. ")
    for o in objects:
        if f" {Q.at(o['position'])} " in f" {q} ":
            return o, ("position" if " object " in q or " thing " in q else "short")
    words = [w for w in re.findall(r"[a-z]+", q) if w in VALUES]
    fits = [o for o in objects if all(o[VALUES[w]] == w for w in words)]
    keys = [k for k in ("size", "colour", "texture", "shape") if k in {VALUES[w] for w in words}]
    return (fits[0], "description: " + "+".join(keys)) if words and len(fits) == 1 else (None, None)


def objects_key(objects):
    """A scene's objects, places aside: two scenes with the same key differ only in where things are."""
    return tuple(sorted((o["shape"], o["colour"], o["size"], o["texture"]) for o in objects))


def error_analysis(rows, records, train_records=()):
    """rows: evaluate(..., keep_rows=True)["rows"]; records: the split's records. For each question
    type: accuracy by objects in the scene and, in scenes of 2+, by how the question names the
    object, by its size, and by whether some training scene (train_records) has the same objects
    (memory of the set could answer it); what the wrong answers are (the value of another object in
    the scene = a binding error, another value of the attribute = a perception error, or not a value
    of it at all); the most common confusions."""
    in_train = {objects_key(r["objects"]) for r in train_records if len(r.get("objects", [])) > 1}
    acc = collections.defaultdict(lambda: collections.defaultdict(list))  # type -> column -> hits
    wrong = collections.defaultdict(collections.Counter)                   # type -> kind of error
    confusions = collections.defaultdict(collections.Counter)              # type -> (answer, pred)
    values = collections.defaultdict(set)                                  # type -> every answer seen
    for row in rows:
        values[row["type"]].add(row["answer"])
    for row in rows:
        t, objects = row["type"], records[row["scene"]].get("objects", [])
        pred = normalise(row["pred"])
        ok = pred == normalise(row["answer"])
        o, named = asked_about(row["question"], objects) if t != "count" else (None, None)
        cols = ["1 object" if len(objects) == 1 else "2+ objects"]
        if t == "absent" and row["answer"] == Q.NOTHING:  # an empty cell, or an object by a description none fits?
            cols += ["'nothing' asked by " + ("place" if any(f" {Q.at(p)}" in row["question"] for p in R.POSITIONS)
                                              else "description")]
        if o is not None:  # compositional: is a red circle harder than a striped one?
            cols += [f"unseen {k}-shape pair" for k in R.unseen_pairs(o)]
        if len(objects) > 1:  # binding: which object is meant matters only where there is a choice
            cols += [f"2+, named by {named}"] if named else []
            cols += [f"2+, {o['size']}"] if o is not None else []
            cols += [f"2+, objects {'in' if objects_key(objects) in in_train else 'not in'} "
                     "a training scene"] if in_train else []
        for c in cols:
            acc[t][c].append(ok)
        if ok:
            continue
        confusions[t][(row["answer"], pred)] += 1
        others = {p[t] for p in objects if p is not o and t in p} - {row["answer"]}
        kind = ("another object's" if pred in others else f"another {t}" if pred in values[t] else f"not a {t}")
        if t == "absent":  # did it miss what is there, or see what is not?
            kind = "'nothing' for a real one" if pred == Q.NOTHING else "a value where nothing is" if \
                row["answer"] == Q.NOTHING else "another value"
        wrong[t][kind] += 1
    return {"accuracy": {t: {c: (sum(h) / len(h), len(h)) for c, h in cols.items()} for t, cols in acc.items()},
            "wrong": {t: dict(k) for t, k in wrong.items()},
            "confusions": {t: c.most_common(4) for t, c in confusions.items()}}


def by_wording(rows):
    """Accuracy per question type and wording (the question's first three words), worst first."""
    keys = [f"{r['type']:<10}{' '.join(r['question'].split()[:3]) + ' ...':<26}" for r in rows]
    acc = vqa_accuracy([r["pred"] for r in rows], [r["answer"] for r in rows], keys)  # the table's exact match
    n = collections.Counter(keys)
    return "\n".join(f"{k}{acc[k]:.3f} (n={n[k]})" for k in sorted(n, key=acc.get))


def format_errors(analysis):
    lines = []
    for t in sorted(analysis["accuracy"]):
        cols = sorted(analysis["accuracy"][t].items())
        for head, pick in ((f"{t}:", lambda c: not c.startswith("2+,")), ("  2+, named by", lambda c: "named" in c),
                           ("  2+, size", lambda c: c.startswith("2+,") and "named" not in c and "training" not in c),
                           ("  2+, the same objects", lambda c: "training" in c)):
            got = [f"{c.split('named by ')[-1].removeprefix('2+, ').removeprefix('objects ')} {a:.3f} (n={n})"
                   for c, (a, n) in cols if pick(c)]
            if got:
                lines.append(f"{head} " + ", ".join(got))
        kinds = analysis["wrong"].get(t, {})
        if kinds:
            lines.append(f"  {sum(kinds.values())} wrong: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
            lines.append("  most often: " + ", ".join(f"{a!r}->{p!r} {n}" for (a, p), n in analysis["confusions"][t]))
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# python evaluate.py: score a checkpoint again, on the data it was trained with, and show its errors
out_dir = "out"          # where train.py wrote ckpt.pt
split = "test"           # 'test' | 'val' | 'compositional' (shapes data) | 'train' (learned or memorised?)
limit = 0                # the first `limit` scenes, 0 = all
paraphrase = False       # ask the test scenes' held-out wordings (qa_paraphrase) instead
ablate = ""              # remove a path into the LLM: 'shortcut:B' (from ViT block B), 'shortcuts', 'crops'; a,b: both
device = "cpu"
threads = None           # CPU threads; None: as many as are free at start (machine.py)
config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, float, str, bool, type(None))}
SPLITS = ("test", "val", "compositional", "train")  # the values --split takes


def main(argv):
    from checkpoint import check_device, load_model
    from configurator import configure_or_exit
    from data.batches import load_dataset
    from machine import use_threads
    configure_or_exit(config, argv, "evaluate.py")
    c = config
    if c["split"] not in SPLITS:  # before the model and data load: a typo costs nothing
        sys.exit(f"evaluate.py: --split={c['split']!r}: use 'test', 'val', 'compositional' or 'train'")
    if c["limit"] < 0:
        sys.exit(f"evaluate.py: --limit={c['limit']} must be >= 0 (0 = every scene)")
    use_threads(c["threads"], "evaluate.py")
    try:
        check_device(c["device"])
        model, ckpt = load_model(os.path.join(c["out_dir"], "ckpt.pt"), c["device"])
        remove = set(filter(None, c["ablate"].split(",")))
        if remove - set(model.paths()):  # before the data load; what there is to remove depends on the model
            raise ValueError(f"--ablate={c['ablate']!r}: this model's paths are {', '.join(model.paths()) or 'none'}")
        ds = load_dataset(ckpt["config"])
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"evaluate.py: {e}")
    splits = {k: getattr(ds, k) for k in SPLITS}  # own data has no compositional split
    if splits.get(c["split"]) is None:
        sys.exit(f"evaluate.py: --split={c['split']!r} is not a split of this model's data; use one of "
                 f"{[k for k, v in splits.items() if v is not None]}")
    data = splits[c["split"]]
    if c["paraphrase"] and not any("qa_paraphrase" in r for r in data.records):
        sys.exit(f"evaluate.py: the {c['split']} split has no held-out wordings: use --split=test with --paraphrase=True")
    res = evaluate(model, ds.tok, data, ckpt["config"]["question_types"], c["device"], limit=c["limit"] or None,
                   keep_rows=True, qa_key="qa_paraphrase" if c["paraphrase"] else "qa",
                   captions=0 if c["paraphrase"] else None, remove=remove)
    if remove:
        print(f"with {', '.join(sorted(remove))} removed (one answer: sample.py --explain=True)")
    print(format_table(res))
    if c["paraphrase"]:
        print("\nby wording (the question's first three words), worst first:")
        print(by_wording(res["rows"]))
    if any("objects" in r for r in data.records):
        print("\nwhere the answers go wrong:")
        print(format_errors(error_analysis(res["rows"], data.records, ds.train.records)))


if __name__ == "__main__":
    from checkpoint import exit_in_one_line
    exit_in_one_line("evaluate.py")  # Ctrl-C, a kill, a full disk: one line, not a traceback
    main(sys.argv[1:])
