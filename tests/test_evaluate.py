"""evaluate.py: the error analysis (which object a question names, what kind each wrong answer
is) on generated scenes, and `python evaluate.py` on a trained checkpoint."""
import re

import pytest

from data.shapes import render as R
from data.shapes.prepare import load_split, make_split
from evaluate import asked_about, error_analysis, format_errors
from tests.forkserver import run


@pytest.fixture(scope="module")
def scenes():
    return make_split("val", 200, max_objects=3, question_types=["colour", "shape", "count", "position", "texture"])[2]


def test_every_question_names_the_object_its_answer_belongs_to(scenes):
    named = set()
    for r in scenes:
        for q in r["qa"]:
            o, how = asked_about(q["question"], r["objects"])
            if q["type"] == "count":
                continue
            assert o is not None, q
            assert o[q["type"]] == q["answer"], (q, o)  # the position type's answer is the object's position too
            named.add(how.split(":")[0])
            if how.startswith("description: "):  # the attributes it names by are all in the question
                assert all(o[k] in re.findall(r"[a-z]+", q["question"]) for k in how[13:].split("+")), (q, how)
    assert named == {"short", "position", "description"}


def test_wrong_answers_are_sorted_into_binding_perception_and_nonsense(scenes):
    two = next(i for i, r in enumerate(scenes) if len(r["objects"]) == 2
               and r["objects"][0]["colour"] != r["objects"][1]["colour"]
               and any(q["type"] == "colour" for q in r["qa"]))
    q = next(q for q in scenes[two]["qa"] if q["type"] == "colour")
    asked, _ = asked_about(q["question"], scenes[two]["objects"])
    other = next(o for o in scenes[two]["objects"] if o is not asked)["colour"]
    spare = next(c for c in ("red", "green", "blue", "yellow") if c not in {q["answer"], other})
    rows = [dict(scene=two, type="colour", question=q["question"], answer=q["answer"], pred=p)
            for p in (q["answer"], other, spare, "top left")]
    rows.append(dict(scene=two, type="colour", question="x", answer=spare, pred=spare))  # makes `spare` a colour
    a = error_analysis(rows, scenes)
    assert a["wrong"]["colour"] == {"another object's": 1, "another colour": 1, "not a colour": 1}
    assert a["accuracy"]["colour"]["2+ objects"] == (2 / 5, 5)
    assert "3 wrong" in format_errors(a)


def test_scenes_are_split_by_whether_training_has_the_same_objects(scenes):
    two = [i for i, r in enumerate(scenes) if len(r["objects"]) == 2][:2]
    rows = [dict(scene=i, type="count", question="how many objects are there?", answer="two", pred=p)
            for i, p in zip(two, ("two", "one"))]
    moved = dict(scenes[two[0]], objects=[dict(o, row=2 - o["row"]) for o in scenes[two[0]]["objects"]])
    acc = error_analysis(rows, scenes, train_records=[moved])["accuracy"]["count"]  # the first scene's objects, elsewhere
    assert acc["2+, objects in a training scene"] == (1.0, 1) and acc["2+, objects not in a training scene"] == (0.0, 1)
    assert not any("training" in c for c in error_analysis(rows, scenes)["accuracy"]["count"])  # no training records given
    assert "2+, the same objects in a training scene 1.000 (n=1)" in format_errors(error_analysis(rows, scenes, [moved]))


def test_nothing_there_is_split_by_whether_it_names_an_empty_place_or_a_description():
    recs = make_split("val", 100, max_objects=2, question_types=["absent"])[2]
    where = lambda q: bool(set(re.findall(r"[a-z]+", q)) & {"top", "middle", "bottom", "left", "centre", "right"})
    rows = [dict(scene=i, type="absent", question=q["question"], answer=q["answer"],
                 pred="nothing" if where(q["question"]) else "red") for i, r in enumerate(recs) for q in r["qa"]]
    acc = error_analysis(rows, recs)["accuracy"]["absent"]
    place, desc = acc["'nothing' asked by place"], acc["'nothing' asked by description"]
    assert place[0] == 1.0 and desc[0] == 0.0 and min(place[1], desc[1]) >= 10  # right only where a place is named
    assert place[1] + desc[1] == sum(r["answer"] == "nothing" for r in rows)
    assert "'nothing' asked by place 1.000" in format_errors(error_analysis(rows, recs))


def test_script_scores_a_checkpoint_and_shows_its_errors(trained):
    code, out, err = run("evaluate.py", f"--out_dir={trained / 'out'}", "--limit=4")
    seen, out_train, err_train = run("evaluate.py", f"--out_dir={trained / 'out'}", "--limit=4", "--split=train")
    bad, _, msg = run("evaluate.py", f"--out_dir={trained / 'out'}", "--split=training")
    assert code == 0, err[-2000:]
    assert "overall" in out and "where the answers go wrong:" in out and "2+ objects" in out
    assert seen == 0 and "overall" in out_train and out_train != out, err_train[-2000:]  # other scenes, other answers
    assert bad != 0 and "use 'test', 'val', 'compositional' or 'train'" in msg.strip().splitlines()[-1]
    # the held-out wordings, scored per wording: every one the test scenes were asked is listed
    para, out_para, err_para = run("evaluate.py", f"--out_dir={trained / 'out'}", "--limit=4", "--paraphrase=True")
    assert para == 0 and "by wording" in out_para, err_para[-2000:]
    listed = out_para.split("worst first:")[1]
    asked = [q for r in load_split(str(trained / "data"), "test")[2][:4] for q in r["qa_paraphrase"]]
    assert asked and all(" ".join(q["question"].split()[:3]) + " ..." in listed for q in asked)
    none, _, msg = run("evaluate.py", f"--out_dir={trained / 'out'}", "--split=val", "--paraphrase=True")
    assert none != 0 and "no held-out wordings" in msg.strip().splitlines()[-1]


def test_ablate_scores_the_model_with_a_path_removed(trained):
    """evaluate(remove={'shortcuts'}) answers as the same weights wired without shortcuts;
    `python evaluate.py --ablate=...` says what it removed, and a path the model has not is one line."""
    from checkpoint import load_model
    from data.batches import load_dataset
    from evaluate import evaluate
    from sparsecut import SparseCut, SparseCutConfig
    model, ck = load_model(str(trained / "out" / "ckpt.pt"))
    plain = SparseCut(SparseCutConfig(**dict(ck["model_config"], shortcut="none")))
    plain.load_state_dict(model.state_dict())
    ds = load_dataset(ck["config"], say=lambda m: None)
    cut, alone = (evaluate(m, ds.tok, ds.test, None, "cpu", limit=4, captions=2, keep_rows=True, remove=r)
                  for m, r in ((model, {"shortcuts"}), (plain, ())))
    assert cut["rows"] == alone["rows"] and cut["caption_f1"] == alone["caption_f1"]
    r = run("evaluate.py", f"--out_dir={trained / 'out'}", "--limit=4", "--ablate=shortcut:0,crops")
    assert r.returncode == 0 and "with crops, shortcut:0 removed" in r.stdout and "overall" in r.stdout, r.stderr[-2000:]
    for bad in ("shortcut:1", "crop", "shortcuts,x"):  # the tiny model's one shortcut is from block 0
        r = run("evaluate.py", f"--out_dir={trained / 'out'}", f"--ablate={bad}")
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert r.stderr.strip() == f"evaluate.py: --ablate={bad!r}: this model's paths are shortcut:0, shortcuts, crops"


def test_prompts_of_one_length_are_answered_together_as_each_alone():
    """generate_grouped batches every prompt of the same token length, whatever its tokens and
    scene: each answer must be the one the prompt gets alone."""
    import torch
    from data.tokenizer import get_tokenizer
    from evaluate import generate_grouped
    from sparsecut import SparseCut, SparseCutConfig
    from tests.test_sparsecut import lively
    tok = get_tokenizer()
    torch.manual_seed(0)
    model = lively(SparseCut(SparseCutConfig(
        vit=dict(image_size=8, patch_size=4, n_layer=3, n_head=2, n_embd=16),
        llm=dict(block_size=64, vocab_size=tok.n_vocab, n_layer=2, n_head=2, n_embd=16),
        fusion="concat", shortcut="sparse", density=1)).eval(), 3.0)
    feats = model.encode(torch.rand(3, 3, 16, 16))
    jobs = [(0, "Q: what colour is the circle? A:"), (1, "Q: what shape is the circle? A:"),
            (2, "Q: where is it? A:"), (1, "Q: what colour is the circle? A:"), (2, "Q: how many? A:")]
    together = generate_grouped(model, tok, feats, jobs, "cpu", 5)
    alone = [generate_grouped(model, tok, feats, [job], "cpu", 5)[0] for job in jobs]
    assert together == alone and len(set(alone)) > 1


def test_unseen_pairs_are_scored_by_which_pair_is_new():
    """On the compositional split a shape answer about a red circle counts under 'unseen colour-shape
    pair', a striped one under 'texture', and an object with both under both."""
    comp = make_split("compositional", 60, max_objects=1, question_types=["shape"])[2]
    rows, kinds = [], []
    for i, r in enumerate(comp):
        o = r["objects"][0]
        kinds.append({k for k in ("colour", "texture") if (o["shape"], o[k]) in R.HELD_OUT_PAIRS})
        q = r["qa"][0]
        rows.append(dict(scene=i, type="shape", question=q["question"], answer=q["answer"],
                         pred=q["answer"] if kinds[-1] == {"colour"} else "cross" if q["answer"] != "cross" else "circle"))
    acc = error_analysis(rows, comp)["accuracy"]["shape"]
    n = {k: sum(k in s for s in kinds) for k in ("colour", "texture")}
    assert all(n.values()) and set().union(*kinds) == {"colour", "texture"}
    both = sum(s == {"colour", "texture"} for s in kinds)
    assert acc["unseen colour-shape pair"] == ((n["colour"] - both) / n["colour"], n["colour"])
    assert acc["unseen texture-shape pair"] == (0.0, n["texture"])
    seen = dict(comp[0], objects=[dict(comp[0]["objects"][0], shape="cross", colour="purple", texture="solid")])
    assert not any("unseen" in c for c in error_analysis([dict(rows[0], answer="cross")], [seen])["accuracy"]["shape"])
