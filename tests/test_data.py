"""Tests of data/: the shapes generator, prompt format, metrics and LLaVA reader/writer."""
import hashlib
import json
import re

import numpy as np
from PIL import Image
import pytest

from data import llava, metrics
from data.prompt import caption_prompt, encode_example, vqa_prompt
from data.shapes import questions as Q
from data.shapes import render as R
from data.shapes.prepare import ensure_prepared, load_split, make_split, prepare
from data.tokenizer import get_tokenizer

N = 60


@pytest.fixture(scope="module")
def splits():
    return {s: make_split(s, N, seed=0) for s in ("train", "val", "test")}


def files_digest(d):
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_prepare_is_deterministic(tmp_path):
    kw = dict(n_train=30, n_val=10, n_test=10)
    prepare(tmp_path / "a", seed=0, **kw)
    prepare(tmp_path / "b", seed=0, **kw)
    prepare(tmp_path / "c", seed=1, **kw)
    a, b, c = (files_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a["train_images.npy"] != c["train_images.npy"] and a["test.jsonl"] != c["test.jsonl"]
    images, masks, records = load_split(tmp_path / "a", "val")
    assert images.shape == (10, 64, 64, 3) and images.dtype == np.uint8 and masks.shape == (10, 64, 64)
    assert all(masks[i].max() == len(r["objects"]) for i, r in enumerate(records))
    assert not ensure_prepared(tmp_path / "a", seed=0, **kw)  # settings match: kept
    assert ensure_prepared(tmp_path / "a", seed=0, n_train=30, n_val=10, n_test=11)  # changed: regenerated


def test_runs_started_together_generate_the_data_once(tmp_path):
    """experiments.py --jobs=2 starts two train.py on one data folder: the one that comes second
    waits for the first to finish generating, then only reads (it once overwrote files mid-read)."""
    import fcntl, os, subprocess, sys, time
    d, kw = tmp_path / "d", "seed=0, n_train=30, n_val=10, n_test=10"
    d.mkdir()
    code = ("from data.shapes.prepare import SPLITS, ensure_prepared, load_split\n"
            f"print(ensure_prepared({str(d)!r}, {kw}))\n"
            f"print(sum(len(load_split({str(d)!r}, s)[2]) for s in SPLITS))")
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # this test is the first run, generating
        second = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                  cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        time.sleep(2)
        assert second.poll() is None  # waiting, not generating beside us
        prepare(d, seed=0, n_train=30, n_val=10, n_test=10)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0 and out.split() == ["False", "60"]  # it generated nothing, read all


def test_splits_are_disjoint_by_content():
    hashes = {}
    for s in ("train", "val", "test"):  # one-object scenes collide often at this size without the guard
        images, _, _ = make_split(s, 1000, seed=0, max_objects=1)
        hashes[s] = {hashlib.sha1(img.tobytes()).hexdigest() for img in images}
    assert not hashes["train"] & hashes["test"] and not hashes["train"] & hashes["val"] and not hashes["val"] & hashes["test"]


def test_texture_and_digits_vanish_in_low_view(splits):
    for images, _, records in splits.values():
        for img, r in zip(images, records):
            plain = [{**o, "texture": "solid"} for o in r["objects"]]
            for o in plain:
                o.pop("text", None)
            solid, _ = R.render(plain)
            assert np.array_equal(R.low_view(img), R.low_view(solid))  # exactly, not approximately
            if any("text" in o or o["texture"] != "solid" for o in r["objects"]):
                assert not np.array_equal(img, solid)  # ...while the full view shows the detail


def test_masks_match_objects(splits):
    images, masks, records = splits["train"]
    for img, m, r in zip(images, masks, records):
        for i, o in enumerate(r["objects"]):
            x0, y0, x1, y1 = o["box"]
            assert (m == i + 1).any() and not (m[:y0] == i + 1).any() and not (m[:, x1:] == i + 1).any()
            assert x0 % 2 == 0 and y0 % 2 == 0 and (x1 - x0) % 2 == 0  # aligned to the 2x2 downsample blocks
            assert o["position"] == R.position_name(o["row"], o["col"])
        assert (img[m == 0] == R.BACKGROUND).all()


def find(objects, description):
    """Objects matching every word of a description like 'large red circle' or 'red object'."""
    words = [w for w in description.split() if w != "object"]
    return [o for o in objects if all(w in (o["size"], o["colour"], o["texture"], o["shape"]) for w in words)]


NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
COUNTS = {"how many objects are there?", "how many shapes are there?", "how many objects are in the image?",
          "how many shapes are in the image?", "how many things are there?", "count the objects.",
          "how many things do you see?", "what is the number of objects?", "count the number of objects.",
          "count the number of shapes.", "how many objects do you see?", "how many shapes can you see?",
          "what is the total number of shapes?", "tell me how many objects there are."}
ATTR = {"colour": "colour", "color": "colour", "hue": "colour", "shape": "shape", "size": "size", "large": "size",
        "texture": "texture", "pattern": "texture"}
RELATION = {"left of": lambda a, b: a["col"] < b["col"], "right of": lambda a, b: a["col"] > b["col"],
            "above": lambda a, b: a["row"] < b["row"], "below": lambda a, b: a["row"] > b["row"]}


def parse(question, objects):
    """A generated question, in any of its wordings -> (answer worked out from the scene graph
    without questions.py, the object asked about or None)."""
    at = {o["position"]: o for o in objects}

    def named(ref):  # 'the object at the top left', 'in the centre', 'the red circle'; None: nothing there
        if m := re.fullmatch(r"(?:the (?:object|thing) )?(?:at|in) the (.+)", ref):
            assert m.group(1) in R.POSITIONS, ref
            return at.get(m.group(1))
        found = find(objects, ref.removeprefix("the "))
        assert len(found) <= 1, ref  # a description names one object, or none (an 'absent' question)
        return found[0] if found else None

    if question in COUNTS:
        return NUMBER_WORDS[len(objects)], None
    for pattern in (r"(?:where is|where's|in which cell is|where can i find|what is the location of|what's the position of"
                    r"|what is the position of|what's the location of|in which cell do you see) the (.+?)(?: located)?\?",
                    r"which cell is the (.+) in\?", r"tell me where the (.+) is\.", r"tell me the (?:position|location) of the (.+)\.",
                    r"give the location of the (.+)\.", r"i am looking for the (.+): where is it\?",
                    r"find the (.+): which cell is it in\?"):
        if m := re.fullmatch(pattern, question):
            o = named("the " + m.group(1))
            return (o["position"], o) if o else (Q.NOTHING, None)
    for pattern in (r"(?:what is written|what number is|which digit is|what digit is written|read the number"
                    r"|which digit can you read|say which digit is) on (.+)[?.]", r"what does (.+) say\?"):
        if m := re.fullmatch(pattern, question):
            o = named(m.group(1))
            return o["text"], o
    rel = r"(?:to the )?(?P<rel>left of|right of|above|below|under)"
    m = re.fullmatch(rf"is the (?P<a>.+?) {rel} the (?P<b>.+)\?", question)
    if m := m or re.fullmatch(rf"looking at the (?P<b>.+), is the (?P<a>.+?) {rel} it\?", question):
        (a,), (b,) = find(objects, m.group("a")), find(objects, m.group("b"))
        rel = {"under": "below"}.get(m.group("rel"), m.group("rel"))
        return ("yes" if RELATION[rel](a, b) else "no"), None
    if m := re.fullmatch(r"(?:is there a|is there any|does the image contain a|can you see a|do you see a) (\w+) (\w+)\?", question):
        return ("yes" if find(objects, m.group(1) + " " + m.group(2)) else "no"), None
    if m := re.fullmatch(r"are there any (\w+) (\w+)\?", question):  # plural: circles, crosses
        shape = m.group(2)[:-2] if m.group(2).endswith("sses") else m.group(2)[:-1]
        return ("yes" if find(objects, m.group(1) + " " + shape) else "no"), None
    for pattern in (r"(?:what|which) (colour|color|shape|size|texture) is (.+)\?", r"what is the (\w+) of (.+)\?",
                    r"what (\w+) does (.+) have\?", r"what's the (\w+) of (.+)\?", r"tell me the (\w+) of (.+)\.",
                    r"which (hue) is (.+)\?", r"how (large) is (.+)\?", r"which (pattern) is on (.+)\?",
                    r"what's the (\w+) ((?:at|in) the .+)\?", r"tell me the (\w+) ((?:at|in) the .+)\.",
                    r"tell me what (\w+) (.+) is\."):
        if m := re.fullmatch(pattern, question):
            o, attr = named(m.group(2)), ATTR[m.group(1)]
            if o is None:
                return Q.NOTHING, None
            assert o[attr] not in m.group(2).split(), question  # the question must not give its answer away
            return o[attr], o
    raise AssertionError(f"unrecognised question {question!r}")


def recompute(question, objects):
    return parse(question, objects)[0]


def test_answers_agree_with_scene_graph(splits):
    seen = set()
    for _, _, records in splits.values():
        for r in records:
            assert len({o["position"] for o in r["objects"]}) == len(r["objects"])
            for q in r["qa"]:
                assert recompute(q["question"], r["objects"]) == q["answer"], (r["id"], q)
                assert 1 <= len(q["answer"].split()) <= 2
                seen.add(q["type"])
    assert seen == set(Q.QUESTION_TYPES)


@pytest.fixture(scope="module")
def many():
    """A few hundred scenes of every split, up to 9 objects, with every wording."""
    return {s: make_split(s, 100, seed=3, max_objects=9)[2] for s in ("train", "val", "test", "compositional")}


def test_every_wording_is_answered_from_the_scene_graph(many):
    tok = get_tokenizer()
    wordings = set()
    for split, records in many.items():
        for r in records:
            assert len({(o["shape"], o["colour"], o["size"], o["texture"]) for o in r["objects"]}) == len(r["objects"])  # no twins
            for q in r["qa"] + r.get("qa_paraphrase", []):
                assert recompute(q["question"], r["objects"]) == q["answer"], (r["id"], q)
                encode_example(tok, vqa_prompt(q["question"]), q["answer"], block_size=64)  # fits the LLM's text
                wordings.add(re.sub(r"the .*|\d", "", q["question"]))
    assert len(wordings) > 30  # many wordings, not one per type
    assert all("qa_paraphrase" in r for r in many["test"]) and not any("qa_paraphrase" in r for r in many["train"])


def template_pattern(template):
    words = "|".join(w for ws in Q.ATTRIBUTE_WORDS.values() for w in ws)
    pattern = re.escape(template).replace(r"\{attr\}", f"(?:{words})").replace(r"\{where\}", "(?:at|in) the [a-z ]+")
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+", pattern))


def test_held_out_wordings_never_in_training_text(many):
    trained = [t for ts in Q.PHRASINGS.values() for t in ts]
    held = [t for ts in Q.HELD_OUT_PHRASINGS.values() for t in ts]
    assert not set(trained) & set(held)
    # at least one held-out wording per type ('absent' is worded as the types it asks about)
    assert set(Q.HELD_OUT_PHRASINGS) | {"absent"} == set(Q.QUESTION_TYPES)
    held_re, trained_re = [template_pattern(t) for t in held], [template_pattern(t) for t in trained]
    for split, records in many.items():
        for r in records:
            for q in r["qa"]:
                assert not any(p.fullmatch(q["question"]) for p in held_re), (split, q)
                assert any(p.fullmatch(q["question"]) for p in trained_re), (split, q)
            for q in r.get("qa_paraphrase", []):
                assert any(p.fullmatch(q["question"]) for p in held_re), q
                assert not any(p.fullmatch(q["question"]) for p in trained_re), q
    paraphrases = {q["question"] for r in many["test"] for q in r["qa_paraphrase"]}
    training = {q["question"] for r in many["train"] for q in r["qa"]}
    assert paraphrases and not paraphrases & training
    # new sentences, not new words: a model trained from scratch cannot know a word it never read
    words = lambda text: set(re.findall(r"[a-z']+", text))
    known = set().union(*(words(t) for t in training | {r["caption"] for r in many["train"]}))
    assert set().union(*(words(q) for q in paraphrases)) <= known


def test_compositional_pairs_only_in_their_split(many):
    _, _, train = make_split("train", 500, seed=0)
    assert not any(R.held_out_pair(o) for r in train + many["train"] + many["val"] + many["test"] for o in r["objects"])
    pairs = [f"{b} {a}" for a, b in R.HELD_OUT_PAIRS]  # 'red circle', 'striped circle': nor in a question
    # (but 'existence', outside the main job's types, asks "is there a red circle?" -> "no"; not mended:
    # its words are in the tokenizer's corpus, so a mend changes the tokenizer and with it every result)
    assert not any(p in q["question"] for r in train + many["train"] for q in r["qa"] for p in pairs
                   if q["type"] != "existence")
    seen = {k: {o[k] for r in train for o in r["objects"]} for k in ("shape", "colour", "texture")}
    assert seen == {"shape": set(R.SHAPES), "colour": set(R.COLOURS), "texture": set(R.TEXTURES)}  # each alone still seen
    for r in many["compositional"]:
        assert any(R.held_out_pair(o) for o in r["objects"])
        asked = {q["type"]: parse(q["question"], r["objects"])[1] for q in r["qa"]}
        for t in ("colour", "shape", "texture", "size", "position"):  # about the unseen pair's object
            assert R.held_out_pair(asked[t]), (r["id"], t)


def test_answers_are_balanced():
    _, _, records = make_split("train", 1500, seed=0)
    base = metrics.majority_baseline(records)
    # texture: the 3 held-out shape x texture pairs are all non-solid, so solid is 4 of the 13 pairs left;
    # shape: the cross is in 1 held-out pair, the others in 2, so of their 24 colour x texture
    # combinations the cross keeps 5 x 4 = 20, the others 6 x 4 - 6 - 4 + 1 = 15: cross is 20 of 65
    chance = {"colour": 1 / 6, "shape": 20 / 65, "count": 1 / 4, "position": 1 / 9, "size": 1 / 2,
              "texture": 4 / 13, "text": 1 / 10, "relation": 1 / 2, "existence": 1 / 2, "absent": 1 / 2}
    for t, c in chance.items():
        assert base[t] < c + 0.06, (t, base[t])
    absent = [q["answer"] == Q.NOTHING for r in records for q in r["qa"] if q["type"] == "absent"]
    assert 0.45 < sum(absent) / len(absent) < 0.55  # half about nothing: "nothing" to all scores about .5


def test_question_types_and_object_counts_are_options():
    _, _, records = make_split("val", 40, seed=0, min_objects=2, max_objects=2, question_types=["count", "texture"])
    assert all(len(r["objects"]) == 2 and [q["type"] for q in r["qa"]] == ["count", "texture"] for r in records)
    with pytest.raises(ValueError, match="unknown question types"):
        make_split("val", 1, question_types=["color"])
    with pytest.raises(ValueError, match="max_objects"):
        make_split("val", 1, max_objects=10)


def test_caption_parser_recovers_scene(splits):
    for _, _, records in splits.values():
        for r in records:
            assert metrics.caption_f1(r["caption"], r["objects"]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    objects = next(r["objects"] for r in splits["val"][2] if len(r["objects"]) == 2)
    other = next(c for c in R.COLOURS if c != objects[0]["colour"])
    wrong = Q.caption([{**objects[0], "colour": other}] + objects[1:])  # one wrong colour
    n = len(metrics.caption_pairs(objects))
    assert metrics.caption_f1(wrong, objects)["precision"] == pytest.approx((n - 1) / n)
    assert metrics.caption_f1(Q.caption(objects[:1]), objects)["recall"] < 1  # a missing object
    assert metrics.caption_f1("", objects)["f1"] == 0


def test_vqa_accuracy():
    acc = metrics.vqa_accuracy([" Red", "circle", "two."], ["red", "square", "two"], ["colour", "shape", "count"])
    assert acc == {"colour": 1.0, "shape": 0.0, "count": 1.0, "overall": pytest.approx(2 / 3)}
    acc = metrics.vqa_accuracy(["red", "nothing"], ["red", "square"], ["colour", "absent"])
    assert acc == {"colour": 1.0, "absent": 0.0, "overall": 1.0}  # 'absent' has its own row, not in overall


def test_prompt_loss_only_on_answer():
    tok = get_tokenizer()
    prompt = vqa_prompt("what colour is the object at the top left?")
    idx, targets = encode_example(tok, prompt, "red", block_size=32)
    n_prompt = len(tok.encode_ordinary(prompt))
    assert len(idx) == len(targets) and idx[1:] == (tok.encode_ordinary(prompt) + targets[n_prompt - 1:])[1:-1]
    assert targets[:n_prompt - 1] == [-1] * (n_prompt - 1)
    assert tok.decode(targets[n_prompt - 1:]) == " red<|endoftext|>"
    assert tok.decode(idx) == prompt + " red"
    _, targets = encode_example(tok, caption_prompt(), "a small red square at the top left", block_size=32)
    assert targets[-1] == tok.eot_token
    with pytest.raises(ValueError, match="block_size=8"):
        encode_example(tok, prompt, "red", block_size=8)


def test_llava_round_trip(tmp_path, splits):
    images, _, records = splits["val"]
    llava.write_llava(records[:5], images[:5], tmp_path / "data.json", tmp_path / "images")
    examples = llava.read_llava(tmp_path / "data.json", tmp_path / "images")
    for r, img, ex in zip(records, images, examples):
        assert ex["id"] == r["id"] and np.array_equal(ex["image"], img)
        assert ex["turns"] == [("describe the image.", r["caption"])] + [(q["question"], q["answer"]) for q in r["qa"]]
    llava.write_llava(examples, images[:5], tmp_path / "again.json", tmp_path / "images")
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((tmp_path / "data.json").read_text())


def test_load_image_any_mode_and_size(tmp_path):
    from PIL import Image
    Image.new("L", (100, 50), 200).save(tmp_path / "grey.png")
    Image.new("RGBA", (7, 9), (255, 0, 0, 128)).save(tmp_path / "rgba.png")
    Image.new("P", (64, 64)).save(tmp_path / "p.gif")
    grey = llava.load_image(tmp_path / "grey.png")
    assert grey.shape == (64, 64, 3) and grey.dtype == np.uint8
    assert (grey[32, :, 0] == 200).all() and (grey[0] == 0).all()  # resized to 64x32, padded top and bottom
    assert llava.load_image(tmp_path / "rgba.png", image_size=32).shape == (32, 32, 3)
    assert llava.load_image(tmp_path / "p.gif").shape == (64, 64, 3)


def test_llava_bad_inputs_give_clear_errors(tmp_path):
    from PIL import Image
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = [{"from": "human", "value": "<image>\nwhat?"}, {"from": "gpt", "value": "red"}]

    def read(*records):
        (tmp_path / "d.json").write_text(json.dumps(list(records)))
        return llava.read_llava(tmp_path / "d.json", tmp_path)

    assert read({"id": "a", "image": "ok.png", "conversations": good})[0]["turns"] == [("what?", "red")]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read({"id": "a", "image": "missing.png", "conversations": good})
    with pytest.raises(ValueError, match="corrupt.png"):
        read({"id": "a", "image": "corrupt.png", "conversations": good})
    with pytest.raises(ValueError, match="record b: empty conversation"):
        read({"id": "a", "image": "ok.png", "conversations": good}, {"id": "b", "image": "ok.png", "conversations": []})
    with pytest.raises(ValueError, match="record c: conversations must alternate"):
        read({"id": "c", "image": "ok.png", "conversations": good[:1]})
    with pytest.raises(ValueError, match="needs the keys"):
        read({"id": "d", "conversations": good})
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        llava.read_llava(tmp_path / "d.json", tmp_path)


def test_own_example_is_llava_data_the_reader_takes(tmp_path):
    from data.own_example import COLOURS, make
    records = make(str(tmp_path), n=12, seed=0)
    assert records == make(str(tmp_path / "again"), n=12, seed=0)  # deterministic
    examples = llava.read_llava(str(tmp_path / "train.json"), str(tmp_path / "images"), 64)
    assert len(examples) == 12
    sizes = {Image.open(tmp_path / "images" / r["image"]).size for r in records}
    assert len(sizes) > 1 and {r["image"][-3:] for r in records} == {"png", "jpg"}  # not pre-sized for us
    for ex, r in zip(examples, records):
        assert ex["image"].shape == (64, 64, 3)
        (q0, colour), (q1, count), (q2, side) = ex["turns"]
        assert colour in COLOURS and count in ("one", "two", "three") and side in ("left", "right")
        # the balls are where the answer says: the picture's dominant colour is in that half
        img = np.asarray(Image.open(tmp_path / "images" / r["image"]).convert("RGB"), dtype=float)
        dist = np.abs(img - np.array(COLOURS[colour])).sum(-1) < 60      # pixels close to the ball colour
        half = img.shape[1] // 2
        assert (dist[:, :half].sum() > dist[:, half:].sum()) == (side == "left")


def test_sampling_curriculum_and_multi_object_weight(splits):
    """Examples.sample: the curriculum draws one-object scenes only; multi_weight draws the
    questions of 2+ object scenes that many times as often afterwards."""
    import torch
    from data.batches import Examples
    records = splits["train"][2]
    ex = Examples(get_tokenizer(), records, ["colour", "shape"], 0.0, 100)
    multi = ex.n_objects > 1
    assert 0 < multi.float().mean() < 1
    g = torch.Generator().manual_seed(0)
    assert not multi[ex.sample(500, g, one_object=True, multi_weight=3.0)].any()
    share = lambda w: multi[ex.sample(20000, g, multi_weight=w)].float().mean().item()
    p = multi.float().mean().item()
    assert abs(share(1.0) - p) < 0.02 and abs(share(3.0) - 3 * p / (3 * p + 1 - p)) < 0.02


def test_pack_puts_each_scenes_questions_in_one_row(splits):
    """Examples.pack: a row holds every question of its scene (and its caption only where asked),
    each as its own segment, tokens and targets as the unpacked examples; padding has no loss."""
    import torch
    from data.batches import Examples
    records = splits["train"][2]
    ex = Examples(get_tokenizer(), records, None, 0.2, 100)
    scenes = torch.tensor([0, 5, 5])
    idx, tgt, seg = ex.pack(scenes, torch.tensor([False, False, True]))
    for b, s in enumerate(scenes.tolist()):
        mine = ex.examples_of[s][:len(records[s]["qa"]) + (b == 2)]       # questions, then the caption
        assert int(seg[b].max()) == len(mine) - 1 + (int(ex.len[mine].sum()) < idx.size(1))  # + padding
        for k, e in enumerate(mine.tolist()):
            n = int(ex.len[e])
            assert torch.equal(idx[b][seg[b] == k], ex.idx[e, :n]) and torch.equal(tgt[b][seg[b] == k], ex.targets[e, :n])
        assert (tgt[b][seg[b] == len(mine)] == -1).all()
    assert ex.is_caption[ex.examples_of[5][-1]] and not ex.is_caption[ex.examples_of[5][:-1]].any()
    g = torch.Generator().manual_seed(0)
    assert (ex.n_scene_objects[ex.sample_scenes(200, g, one_object=True)] == 1).all()


def test_rewording_the_questions_leaves_every_image_as_it_was(monkeypatch):
    """Questions are drawn from a stream of their own, so a stage-0 ViT trained on the images stays
    valid when the wordings change (docs/FINDINGS.md: Wordings)."""
    types = ["colour", "shape", "count", "position", "texture"]
    images, _, records = make_split("train", 30, max_objects=2, question_types=types)
    monkeypatch.setitem(Q.PHRASINGS, "attribute", Q.PHRASINGS["attribute"][:2])  # fewer wordings, other draws
    monkeypatch.setitem(Q.PHRASINGS, "count", ["how many objects are there?"])
    images2, _, records2 = make_split("train", 30, max_objects=2, question_types=types)
    assert [r["qa"] for r in records] != [r["qa"] for r in records2]  # the questions did change ...
    assert np.array_equal(images, images2)                            # ... the images did not
    assert [r["objects"] for r in records] == [r["objects"] for r in records2]
