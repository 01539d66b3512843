"""
Evaluation shared by train.py, sample.py and the experiments: greedy answers with the KV cache,
exact-match accuracy per question type, caption F1, and the machine's matmul peak for MFU.
"""
import collections
import time

import torch

from data.batches import to_float
from data.metrics import caption_f1, majority_baseline, vqa_accuracy
from data.prompt import caption_prompt, vqa_prompt


@torch.no_grad()
def evaluate(model, tok, split, question_types, device, limit=None, captions=None, chunk=200,
             max_answer_tokens=8, max_caption_tokens=64, qa_key="qa"):
    """Greedy answers for the questions of the first `limit` scenes (all if None), and captions for
    the first `captions` scenes (all if None, none if 0). qa_key: the records' list of questions
    to ask ('qa_paraphrase': the test split's held-out wordings). Returns a dict of metrics."""
    was_training = model.training
    model.eval()
    n = len(split.records) if limit is None else min(limit, len(split.records))
    def want(q, r):  # own data (no scene graph) keeps every question
        return question_types is None or "objects" not in r or q["type"] in question_types

    preds, answers, types, n_obj, f1s = [], [], [], [], []
    n_cap = n if captions is None else min(captions, n)
    for start in range(0, n, chunk):
        recs = split.records[start:start + chunk]
        feats = model.encode(to_float(split.images[start:start + len(recs)]).to(device))  # once per scene
        jobs = []  # (scene in chunk, prompt, answer, type)
        for i, r in enumerate(recs):
            jobs += [(i, vqa_prompt(q["question"]), q["answer"], q["type"]) for q in r.get(qa_key, []) if want(q, r)]
        out = generate_grouped(model, tok, feats, [(i, p) for i, p, _, _ in jobs], device, max_answer_tokens)
        for (i, _, a, t), p in zip(jobs, out):
            preds.append(p), answers.append(a), types.append(t)
            n_obj.append(len(recs[i].get("objects", [])))
        caps = [i for i in range(len(recs)) if start + i < n_cap and recs[i].get("caption")]
        out = generate_grouped(model, tok, feats, [(i, caption_prompt()) for i in caps], device, max_caption_tokens)
        f1s += [caption_f1(p, recs[i]["objects"])["f1"] for i, p in zip(caps, out)]
    model.train(was_training)
    records = split.records[:n]
    results = {"vqa": vqa_accuracy(preds, answers, types), "n": dict(collections.Counter(types)),
               "majority": majority_baseline([dict(r, qa=[q for q in r.get(qa_key, []) if want(q, r)]) for r in records]),
               "caption_f1": sum(f1s) / len(f1s) if f1s else None,
               "samples": [{"type": t, "answer": a, "pred": p} for t, a, p in list(zip(types, answers, preds))[:10]]}
    if any(n_obj):  # binding errors hide everything else: split by objects per scene
        by = collections.defaultdict(list)
        for p, a, k in zip(preds, answers, n_obj):
            by["1 object" if k == 1 else "2+ objects"].append(p.strip().lower() == a.strip().lower())
        results["by_objects"] = {k: sum(v) / len(v) for k, v in sorted(by.items())}
    results["n"]["overall"] = len(preds)
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


def generate_grouped(model, tok, feats, jobs, device, max_new_tokens):
    """jobs: [(scene index into feats, prompt)] -> decoded answers. Prompts of equal token length
    are batched together, so no padding ever shifts the text positions."""
    groups = collections.defaultdict(list)
    for j, (i, prompt) in enumerate(jobs):
        groups[tuple(tok.encode_ordinary(prompt))].append((j, i))
    out = [None] * len(jobs)
    budget = model.llm.config.block_size - model.n_image_tokens
    for ids, members in groups.items():
        scenes = torch.tensor([i for _, i in members])
        idx = torch.tensor(ids, device=device).expand(len(members), -1)       # (B, T)
        f = {b: v[scenes] for b, v in feats.items()}
        gen = model.generate(None, idx, min(max_new_tokens, budget - len(ids)), temperature=0.0,
                             stop_token=tok.eot_token, feats=f)[:, len(ids):]
        for (j, _), row in zip(members, gen.tolist()):
            out[j] = tok.decode(row[:row.index(tok.eot_token)] if tok.eot_token in row else row).strip()
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


def measure_peak_flops(device, m, n, seconds=0.2):
    """This machine's matmul throughput at the model's dominant shape, (m x n) @ (n x 4n), in FLOP/s.
    On CUDA, bf16 as training uses it. MFU = the model's FLOPs per second / this. The best of
    four timings of at least `seconds` each: the first runs pay for warm-up, and machines are noisy."""
    cuda = str(device).startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(m, n, device=device, dtype=dtype)
    b = torch.randn(n, 4 * n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(4):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            if cuda:
                torch.cuda.synchronize()
            reps += 1
        best = max(best, 2 * m * n * 4 * n * reps / (time.perf_counter() - t0))
    return best
