"""
Metrics: VQA exact match per question type, the majority-answer baseline it must beat, and
caption precision / recall / F1 over (object, attribute) pairs.

$ python -m data.metrics [data/shapes]   # majority baselines of the prepared test split
"""
import collections
import re
import sys

from data.shapes import questions as Q
from data.shapes import render as R


def normalise(answer):
    return " ".join(answer.strip().lower().rstrip(".").split())


OWN_ROW = {"absent"}  # scored in their own row only: 'overall' keeps the meaning it had before them


def vqa_accuracy(preds, answers, types):
    """Exact match after normalise(): {"overall": acc, type: acc, ...} (types present only)."""
    assert len(preds) == len(answers) == len(types)
    hits = collections.defaultdict(list)
    for p, a, t in zip(preds, answers, types):
        ok = normalise(p) == normalise(a)
        hits[t].append(ok)
        if t not in OWN_ROW:
            hits["overall"].append(ok)
    return {t: sum(h) / len(h) for t, h in hits.items()}


def majority_baseline(records, train_records=None):
    """Accuracy of always giving each type's most common answer: {"overall": acc, type: acc, ...}.

    The most common answer is taken from train_records if given (an honest baseline), else from
    records themselves (the best any constant answer can do on them).
    """
    source = collections.defaultdict(collections.Counter)
    for r in train_records or records:
        for q in r["qa"]:
            source[q["type"]][q["answer"]] += 1
    preds, answers, types = [], [], []
    for r in records:
        for q in r["qa"]:
            preds.append(source[q["type"]].most_common(1)[0][0] if source[q["type"]] else "")
            answers.append(q["answer"])
            types.append(q["type"])
    return vqa_accuracy(preds, answers, types)


_position = re.compile(r"\b(?:at|in) the (" + "|".join(sorted(R.POSITIONS, key=len, reverse=True)) + r")\b")
_marked = re.compile(r"\bmarked (\S+)")


def parse_caption(text):
    """Caption -> list of objects {"position", "size", "colour", "texture", "shape", "text"?}.

    Reads each ' and '-separated phrase word by word, so it also takes a model's imperfect
    captions: an attribute whose word is missing is left out (except texture: no texture word
    means solid, as the captions say it), unknown words are ignored.
    """
    vocab = {w: k for k, ws in (("size", R.SIZES), ("colour", R.COLOURS), ("texture", R.TEXTURES),
                                ("shape", R.SHAPES)) for w in ws}
    objects = []
    for phrase in normalise(text).split(" and "):
        o = {}
        m = _position.search(phrase)
        if m:
            o["position"] = m.group(1)
            phrase = phrase[:m.start()]
        m = _marked.search(phrase)
        if m:
            o["text"] = m.group(1)
            phrase = phrase[:m.start()]
        for w in phrase.split():
            if w in vocab and vocab[w] not in o:
                o[vocab[w]] = w
        if o:
            o.setdefault("texture", "solid")
            objects.append(o)
    return objects


def caption_pairs(objects):
    """{(position, attribute, value)}: the facts a caption states, keyed by the object's position."""
    keys = ("size", "colour", "texture", "shape", "text")
    return {(o.get("position"), k, o[k]) for o in objects for k in keys if k in o}


def caption_f1(pred_caption, objects):
    """Precision / recall / F1 of the (object, attribute) pairs in pred_caption against the scene.

    Objects are matched by position (unique in a scene); one wrong colour costs exactly one
    pair of precision and one of recall, a missing object all of its pairs of recall.
    """
    pred, true = caption_pairs(parse_caption(pred_caption)), caption_pairs(objects)
    hit = len(pred & true)
    p = hit / len(pred) if pred else 0.0
    r = hit / len(true) if true else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if hit else 0.0}


if __name__ == "__main__":
    from data.shapes.prepare import load_split
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "data/shapes"
    train, test = load_split(out_dir, "train")[2], load_split(out_dir, "test")[2]
    base = majority_baseline(test, train_records=train)
    counts = collections.Counter(q["type"] for r in test for q in r["qa"])
    majority = {t: collections.Counter(q["answer"] for r in train for q in r["qa"] if q["type"] == t).most_common(1)[0][0]
                for t in counts}
    print("| type | questions | majority answer (train) | majority baseline (test) |")
    print("|---|---|---|---|")
    for t in [t for t in Q.QUESTION_TYPES if t in counts] + ["overall"]:
        n = counts[t] if t in counts else sum(v for k, v in counts.items() if k not in OWN_ROW)
        print(f"| {t} | {n} | {majority.get(t, '')} | {base[t]:.3f} |")
