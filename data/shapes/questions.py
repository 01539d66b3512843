"""
Captions and questions of a scene, all computed from its scene graph (render.py draws it).

Every question type has several wordings (PHRASINGS) and a few held out from training
(HELD_OUT_PHRASINGS), so that the test can ask in words the model never saw together.
"""
from data.shapes.render import COLOURS, HELD_OUT_PAIRS, POSITIONS, SHAPES, pick

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
QUESTION_TYPES = ["colour", "shape", "count", "position", "size", "texture", "text", "relation", "existence", "absent"]
# 'absent': a colour, shape, texture or position question; half of them name an empty place or an
# object the scene does not have ("what colour is the object at the top left?" with nothing there,
# "where is the blue circle?" with no blue circle), answered NOTHING; the other half, in the same
# wordings, a real object. Scored in a row of its own, outside 'overall' (data/metrics.py).
ABSENT_KINDS = ["colour", "shape", "texture", "position"]
NOTHING = "nothing"


def at(position):
    """'at the top left', 'in the centre': a position as the text says it."""
    return "in the centre" if position == "centre" else "at the " + position


def describe(o, with_position=True):
    """'large red striped circle marked 7 at the top left' (solid is the unsaid default)."""
    words = [o["size"], o["colour"]] + ([o["texture"]] if o["texture"] != "solid" else []) + [o["shape"]]
    if "text" in o:
        words += ["marked", o["text"]]
    if with_position:
        words.append(at(o["position"]))
    return " ".join(words)


def caption(objects):
    """'a large red striped circle at the top left and a small blue square in the centre'"""
    return " and ".join("a " + describe(o) for o in objects)


# Phrasings, per question type. {ref} names the object (by position, "the object at the top left",
# or by a unique description, "the red circle"); {where} is its position alone ("at the top left");
# {attr} is the attribute's word (colour or color); {desc} a unique description; {a} {rel} {b} a
# relation; {c} {s} / {ss} a colour and a shape / its plural. The first of each list is the
# original template. Answers never depend on the phrasing.
PHRASINGS = {
    "attribute": ["what {attr} is {ref}?", "which {attr} is {ref}?", "what is the {attr} of {ref}?",
                  "what {attr} does {ref} have?", "what {attr} is {where}?", "tell me what {attr} {ref} is.",
                  "what's the {attr} {where}?", "tell me the {attr} {where}."],
    # more words people use (hue, pattern, location, ...), each in several frames: a model trained
    # from scratch knows no word its training text never had (docs/FINDINGS.md: Wordings)
    "colour": ["what is the hue of {ref}?", "what hue does {ref} have?", "what's the hue of {ref}?",
               "tell me the hue of {ref}."],
    "texture": ["what is the pattern of {ref}?", "what pattern does {ref} have?", "what's the pattern of {ref}?",
                "tell me the pattern of {ref}."],
    "text": ["what is written on {ref}?", "what number is on {ref}?", "which digit is on {ref}?",
             "what digit is written on {ref}?", "which digit can you read on {ref}?", "say which digit is on {ref}."],
    "count": ["how many objects are there?", "how many shapes are there?", "how many objects are in the image?",
              "how many shapes are in the image?", "how many things are there?", "count the objects.",
              "count the number of objects.", "count the number of shapes.", "how many objects do you see?",
              "how many shapes can you see?", "what is the total number of shapes?", "tell me how many objects there are."],
    "position": ["where is the {desc}?", "where's the {desc}?", "which cell is the {desc} in?",
                 "in which cell is the {desc}?", "where is the {desc} located?", "what's the position of the {desc}?",
                 "give the location of the {desc}.", "in which cell do you see the {desc}?",
                 "i am looking for the {desc}: where is it?", "find the {desc}: which cell is it in?",
                 "what is the position of the {desc}?", "tell me where the {desc} is.", "tell me the position of the {desc}.",
                 "what's the location of the {desc}?", "tell me the location of the {desc}."],
    "relation": ["is the {a} {rel} the {b}?"],
    "existence": ["is there a {c} {s}?", "is there any {c} {s}?", "are there any {c} {ss}?",
                  "does the image contain a {c} {s}?"],
}
# A frame ("what's the ... of {ref}?", "tell me the ... of {ref}.") and a word (hue, pattern,
# location) each occur in training in other combinations, so that a held-out wording is a new
# combination of known parts: the training text teaches which word decides the type, not which
# frame goes with which type (docs/FINDINGS.md: Wordings).
# Held out: never used for train/val/test questions, only for the test split's "qa_paraphrase"
# (same types, same scene, answers from the same scene graph), to measure whether the model
# understands a question it has never seen worded that way. Each is a new sentence made of words
# the training text has (tests/test_data.py checks it): no model can know a word it never saw.
HELD_OUT_PHRASINGS = {
    "colour": ["which hue is {ref}?", "tell me the {attr} of {ref}.", "what's the {attr} of {ref}?"],
    "shape": ["what's the {attr} of {ref}?", "tell me the {attr} of {ref}."],
    "size": ["how large is {ref}?", "what's the {attr} of {ref}?"],
    "texture": ["which pattern is on {ref}?", "what's the {attr} of {ref}?", "tell me the {attr} of {ref}."],
    "text": ["what does {ref} say?", "read the number on {ref}."],
    "count": ["how many things do you see?", "what is the number of objects?"],
    "position": ["what is the location of the {desc}?", "where can i find the {desc}?"],
    "relation": ["looking at the {b}, is the {a} {rel} it?"],
    "existence": ["can you see a {c} {s}?", "do you see a {c} {s}?"],
}
ATTRIBUTE_WORDS = {"colour": ["colour", "color"], "shape": ["shape"], "size": ["size"], "texture": ["texture"]}
# relation -> (its words, whether it holds for objects a, b)
RELATIONS = {
    "left": (["left of", "to the left of"], lambda a, b: a["col"] < b["col"]),
    "right": (["right of", "to the right of"], lambda a, b: a["col"] > b["col"]),
    "above": (["above"], lambda a, b: a["row"] < b["row"]),
    "below": (["below", "under"], lambda a, b: a["row"] > b["row"]),
}
def referent(o, objects, exclude=None):
    """Shortest description ('circle', 'red circle', 'red object', ...) that picks out o alone, or
    None. exclude: an attribute the description must not use (the one a question asks about)."""
    for keys in DESCRIPTIONS:
        if exclude in keys:
            continue
        if sum(all(p[k] == o[k] for k in keys) for p in objects) == 1:
            words = [o[k] for k in ("size", "colour", "texture", "shape") if k in keys]
            return " ".join(words if "shape" in keys else words + ["object"])
    return None


# every subset of the attributes, shortest first, shape first among equals (the original order)
DESCRIPTIONS = [["shape"], ["colour"], ["size"], ["texture"], ["colour", "shape"], ["size", "shape"],
                ["texture", "shape"], ["size", "colour"], ["colour", "texture"], ["size", "texture"],
                ["size", "colour", "shape"], ["colour", "texture", "shape"], ["size", "texture", "shape"],
                ["size", "colour", "texture"], ["size", "colour", "texture", "shape"]]


def ask(qtype, objects, rng, held_out=False, target=None):
    """One (question, answer) of the given type, or None if the scene cannot have one.
    held_out: word it with a held-out phrasing. target: ask about this object where the type allows."""
    def name(o, exclude=None):  # by position or, half the time where there is one, by a unique description
        desc = referent(o, objects, exclude)
        if desc and rng.random() < 0.5:
            return "the " + desc
        return f"the {pick(['object', 'thing'], rng)} {at(o['position'])}"

    if qtype not in QUESTION_TYPES:
        raise ValueError(f"unknown question type {qtype!r}; valid: {QUESTION_TYPES}")
    absent = qtype == "absent"
    if absent:
        qtype = pick(ABSENT_KINDS, rng)
        if rng.random() < 0.5:  # the half about a real object: that kind's own question
            return ask(qtype, objects, rng, held_out, target)
    if held_out:
        template = pick(HELD_OUT_PHRASINGS[qtype], rng)
    else:
        template = pick(PHRASINGS["attribute"] + PHRASINGS.get(qtype, []) if qtype in ATTRIBUTE_WORDS else PHRASINGS[qtype], rng)
    if absent:
        q = nothing_there(qtype, template, objects, rng)
        return q and (q, NOTHING)
    if qtype in ATTRIBUTE_WORDS:
        o = target if target is not None else pick(objects, rng)
        ref = "" if "{where}" in template else name(o, exclude=qtype)
        return template.format(attr=pick(ATTRIBUTE_WORDS[qtype], rng), ref=ref, where=at(o["position"])), o[qtype]
    if qtype == "text":
        marked = [o for o in objects if "text" in o]
        if not marked:
            return None
        o = target if target is not None and "text" in target else pick(marked, rng)
        return template.format(ref=name(o)), o["text"]
    if qtype == "count":
        return template, NUMBERS[len(objects)]
    if qtype == "position":
        named = [o for o in objects if referent(o, objects)]
        if not named:
            return None
        o = target if target is not None and referent(target, objects) else pick(named, rng)
        return template.format(desc=referent(o, objects)), o["position"]
    if qtype == "relation":
        answer = "yes" if rng.random() < 0.5 else "no"
        pairs = []  # (a, relation, b) with the wanted answer, both uniquely named
        for a in objects:
            for b in objects:
                if a is b or not referent(a, objects) or not referent(b, objects):
                    continue
                pairs += [(a, rel, b) for rel, (_, holds) in RELATIONS.items() if holds(a, b) == (answer == "yes")]
        if not pairs:
            return None
        a, rel, b = pick(pairs, rng)
        return template.format(a=referent(a, objects), rel=pick(RELATIONS[rel][0], rng), b=referent(b, objects)), answer
    # existence
    if rng.random() < 0.5:
        o = pick(objects, rng)
        c, s, answer = o["colour"], o["shape"], "yes"
    else:
        present = {(o["colour"], o["shape"]) for o in objects}
        c, s = pick([(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present], rng)
        answer = "no"
    return template.format(c=c, s=s, ss=s + ("es" if s.endswith("s") else "s")), answer


def missing(objects, exclude):
    """Descriptions that fit no object of the scene and name no held-out pair ('triangle', 'blue
    object', 'blue circle'), without the attribute `exclude` (the one a question asks about)."""
    def have(**attrs):
        return any(all(o[k] == v for k, v in attrs.items()) for o in objects)
    out = [s for s in SHAPES if exclude != "shape" and not have(shape=s)]
    out += [c + " object" for c in COLOURS if exclude != "colour" and not have(colour=c)]
    return out + [f"{c} {s}" for c in COLOURS for s in SHAPES if exclude not in ("colour", "shape")
                  and not have(colour=c, shape=s) and (s, c) not in HELD_OUT_PAIRS]


def nothing_there(kind, template, objects, rng):
    """template, a wording of question type `kind`, asked about an empty place or a missing object
    (None if the scene has neither)."""
    if kind == "position":
        return template.format(desc=pick(missing(objects, None), rng))
    empty = [p for p in POSITIONS if p not in {o["position"] for o in objects}]
    if not empty and "{where}" in template:  # every cell taken (9 objects): ask by description
        template = PHRASINGS["attribute"][0]
    where = at(pick(empty, rng)) if empty else ""
    descs = missing(objects, kind)
    if not empty and not descs:
        return None  # every cell taken, every description there: this scene cannot have one
    if "{where}" in template or (empty and rng.random() < 0.5) or not descs:
        ref = f"the {pick(['object', 'thing'], rng)} {where}"
    else:
        ref = "the " + pick(descs, rng)
    return template.format(attr=pick(ATTRIBUTE_WORDS[kind], rng), ref=ref, where=where)


def questions(objects, rng, types=None, held_out=False, target=None):
    """One question per requested type (types the scene cannot have are skipped)."""
    qa = []
    for t in types or QUESTION_TYPES:
        q = ask(t, objects, rng, held_out, target)
        if q is not None:
            qa.append({"type": t, "question": q[0], "answer": q[1]})
    return qa
