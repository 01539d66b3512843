"""
Ask a trained SparseCut model about an image.

    python sample.py --image=photo.png --question="what colour is the object at the top left?"
    python sample.py --split=test --index=7          # a scene of the shapes data (its questions)
                                                     # (missing or stale data: generated from the checkpoint's settings)
    python sample.py --image=photo.png               # no question: a caption
    python sample.py --split=test --index=7 --explain=True --save=why.png   # which path gave the answer

Greedy by default (temperature=0); --temperature/--top_k/--num_samples to sample. The image is
converted to RGB and resized/padded to the model's full resolution.

--explain=True, for one question (with --split and no --question, the scene's first): the full
model's greedy answer and its probability, then with each path into the LLM removed (the model's
paths(): each shortcut, all of them, the crops) the probability of those same tokens and the
greedy answer then given. A removed shortcut adds nothing at prefill; removed crops are zeroed
features before the fusion. evaluate.py --ablate=PATH gives the same removal over a whole split.
"""
import os
import sys

import numpy as np
import torch

from checkpoint import check_device, exit_in_one_line, load_model
from configurator import configure_or_exit
from data.batches import to_float
from data.llava import load_image
from data.prompt import answer_of, caption_prompt, vqa_prompt
from data.tokenizer import get_tokenizer
from drawing import COLOURS, canvas, check_image_path, save as save_image, y_axis
from fusion import make_views
from machine import use_threads

out_dir = "out"          # where train.py wrote ckpt.pt
image = ""               # an image file ...
split = ""               # ... or a scene of the shapes data: 'train' | 'val' | 'test'
index = 0
question = ""            # '' = describe the image
num_samples = 1
temperature = 0.0        # 0 = greedy
top_k = 0                # 0 = no top-k filtering
max_new_tokens = 48
seed = 1337
device = "cpu"
save = ""                # write a PNG: the image at both resolutions with the question and answers
explain = False          # one question's greedy answer, and its probability with each path removed
threads = None           # CPU threads; None: as many as are free at start (machine.py)
config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, float, str, bool, type(None))}


def fail(msg):
    sys.exit(f"sample.py: {msg}")


@torch.no_grad()
def explain_answer(model, tok, x, ids, max_new_tokens):
    """What each path into the LLM does for one answer: image x (1, 3, 2S, 2S), prompt ids. Returns
    ([(removed, p, answer)], the scored ids): first the full model ('full model'), then each path
    of model.paths() removed. p: the probability of the full model's greedy answer tokens, its EOT
    included where it stopped there, teacher-forced: the product over them of p(token | image,
    prompt, the tokens before it). answer: the greedy answer given with that path removed."""
    feats = model.encode(x)                                            # once: only the fusion changes
    idx = torch.tensor([ids], device=x.device)                         # (1, T)
    rows, scored = [], None
    for removed in ["full model"] + model.paths():
        remove = set() if removed == "full model" else {removed}
        out = model.generate(None, idx, max_new_tokens, temperature=0.0, stop_token=tok.eot_token, feats=feats,
                             remove=remove)[0, len(ids):].tolist()
        if scored is None:  # the full model's answer: every row scores these tokens
            scored = out[:out.index(tok.eot_token) + 1] if tok.eot_token in out else out
        seq = torch.tensor([ids + scored[:-1]], device=x.device)       # (1, T + A - 1): the answer fed back
        logits, _ = model(None, seq, feats=feats, remove=remove)       # (1, T + A - 1, V)
        logp = logits[0, len(ids) - 1:].float().log_softmax(-1)        # (A, V): what comes after the prompt
        p = logp.gather(1, torch.tensor(scored, device=x.device)[:, None]).sum().exp().item()
        rows.append((removed, p, answer_of(tok, out)))
    return rows, scored


def format_explanation(rows, tokens):
    lines = [f"p(answer): the product of the probabilities of the full model's answer tokens {tokens}, "
             f"teacher-forced", f"{'removed':<14}{'p(answer)':>10}   answer then"]
    # 4 significant digits, however small p is
    return "\n".join(lines + [f"{r:<14}{p:>10.4g}   {a or '(none: EOT first)'}" for r, p, a in rows])


def save_png(path, img, q, answers, explained=()):
    """The full-resolution image and the low view (as the model's low view sees it), with the text;
    with `explained` (explain_answer's rows), a bar chart beside them: p(answer) per removed path."""
    from PIL import Image
    x = to_float(img[None])
    low = make_views(x)[0][0].permute(1, 2, 0).mul(255).round().byte().numpy()
    z = 4
    full_im = Image.fromarray(img).resize((img.shape[1] * z, img.shape[0] * z), Image.NEAREST)
    low_im = Image.fromarray(low).resize((img.shape[1] * z, img.shape[0] * z), Image.NEAREST)
    lines = [f"Q: {q}"] + [f"A: {a}" for a in answers]
    top, chart, bar = 26, full_im.width * 2 + 70, 90  # room for the panel labels; where the bars start
    W = chart + bar * len(explained) if explained else full_im.width * 2 + 30
    H = top + full_im.height + 20 + 14 * len(lines) + 10
    sheet, draw = canvas(W, H)
    sheet.paste(full_im, (10, top))
    sheet.paste(low_im, (full_im.width + 20, top))
    S = img.shape[0]
    draw.text((10, 8), f"full resolution {S}x{S} (cut into the 4 crops)", fill="black")
    draw.text((full_im.width + 20, 8), f"low view {S // 2}x{S // 2}", fill="black")
    for i, line in enumerate(lines):
        draw.text((10, top + full_im.height + 8 + 14 * i), line, fill="black")
    if explained:
        y_of = y_axis(draw, chart - 6, W - 10, top, full_im.height)
        draw.text((chart - 30, 8), "p(the full model's answer) with a path removed", fill="black")
        for i, (removed, p, answer) in enumerate(explained):
            x = chart + bar * i
            draw.rectangle([x, y_of(p), x + bar - 30, top + full_im.height], fill=COLOURS[i % len(COLOURS)])
            draw.text((x, y_of(p) - 12), f"{p:.3f}", fill="black")
            draw.text((x, top + full_im.height + 4), f"{removed}\n-> {answer[:12]}", fill="black")
    save_image(sheet, path)


def check_flags(c):
    """Bad flags end the program in one line, before anything is loaded."""
    for key, low in (("num_samples", 1), ("max_new_tokens", 1), ("top_k", 0)):
        if c[key] < low:
            fail(f"--{key}={c[key]} must be >= {low}")
    if not c["temperature"] >= 0:  # also NaN
        fail(f"--temperature={c['temperature']} must be >= 0 (0 = greedy)")
    try:
        check_device(c["device"])
    except ValueError as e:
        fail(e)
    if c["explain"] and (c["num_samples"] != 1 or c["temperature"] != 0):
        fail("--explain scores the greedy answer: use it with --temperature=0 and --num_samples=1")
    if c["save"]:
        try:
            check_image_path(c["save"])  # the folder is made at the end: the first part that exists decides
        except ValueError as e:
            fail(f"--save={c['save']!r}: {e}")


def dataset_scene(tc, split, index):
    """Scene `index` of a split of the data this checkpoint was trained on (its config tc): read from
    tc['data_dir'] if the files there were made with the same settings, else generated again in
    memory (each split's scenes come from its own seeded stream, so scene i is the same scene)."""
    from data.shapes.prepare import SPLITS, load_split, make_split, read_meta, settings
    if tc.get("data", "shapes") != "shapes":
        fail(f"--split needs a model trained on the shapes data; this one used data={tc['data']!r}: use --image")
    if split not in SPLITS:
        fail(f"--split={split!r} is not a split of the shapes data; use one of {SPLITS}")
    kw = dict(seed=tc["data_seed"], min_objects=tc["min_objects"], max_objects=tc["max_objects"],
              question_types=tc["question_types"], image_size=tc["image_size"])
    sizes = dict(n_train=tc["n_train"], n_val=tc["n_val"], n_test=tc["n_test"])
    n = {"train": tc["n_train"], "val": tc["n_val"]}.get(split, tc["n_test"])
    if not 0 <= index < n:
        fail(f"--index={index} is out of range: the {split} split has {n} scenes")
    if read_meta(tc["data_dir"]) == settings(**sizes, **kw):  # complete, and made with these settings
        try:
            images, _, records = load_split(tc["data_dir"], split)
            return images[index], records[index]
        except (FileNotFoundError, ValueError):
            pass  # unreadable after all: generated below
    args = " ".join(f"--{k}={v}" for k, v in {**sizes, **kw, "question_types": ",".join(kw["question_types"] or [])}.items())
    print(f"(no data made with this model's settings in {tc['data_dir']}: generated the scene; to write the "
          f"files: python data/shapes/prepare.py --out_dir={tc['data_dir']} {args})")
    images, _, records = make_split(split, index + 1, **kw)  # the first index+1 scenes of the split
    return images[index], records[index]


def main(argv):
    configure_or_exit(config, argv, "sample.py")
    c = config
    check_flags(c)
    use_threads(c["threads"], "sample.py")
    try:
        model, ckpt = load_model(os.path.join(c["out_dir"], "ckpt.pt"), c["device"])
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    model.eval()
    tc = ckpt["config"]
    tok = get_tokenizer()

    questions = [c["question"]] if c["question"] else []
    if c["image"] and c["split"]:
        fail("give --image or --split/--index, not both")
    if c["image"]:
        try:
            img = load_image(c["image"], tc["image_size"])
        except (FileNotFoundError, ValueError) as e:
            fail(e)
    elif c["split"]:
        img, rec = dataset_scene(tc, c["split"], c["index"])
        print(f"scene {rec['id']}: {rec['caption']}")
        if not questions:
            questions = [q["question"] for q in rec["qa"]] + [""]
    else:
        fail("nothing to look at: give --image=path or --split=test --index=N")
    questions = questions or [""]
    if c["explain"]:
        questions = questions[:1]

    print(model.describe())
    torch.manual_seed(c["seed"])
    x = to_float(img[None]).to(c["device"])                                  # (1, 3, 2S, 2S)
    budget = model.llm.config.block_size - model.n_image_tokens
    for q in questions:
        prompt = vqa_prompt(q) if q else caption_prompt()
        ids = tok.encode_ordinary(prompt)
        if len(ids) >= budget:
            fail(f"the prompt is {len(ids)} tokens but the context holds {budget} after the "
                 f"{model.n_image_tokens} image tokens: ask a shorter question")
        n_new = min(c["max_new_tokens"], budget - len(ids))
        explained = ()
        if c["explain"]:
            explained, scored = explain_answer(model, tok, x, ids, n_new)
            answers = [explained[0][2]]
        else:
            idx = torch.tensor([ids] * c["num_samples"], device=c["device"])  # (num_samples, T)
            out = model.generate(x.expand(c["num_samples"], -1, -1, -1), idx, n_new, temperature=c["temperature"],
                                 top_k=c["top_k"] or None, stop_token=tok.eot_token)
            answers = [answer_of(tok, row) for row in out[:, len(ids):].tolist()]
        print(f"\n{prompt}")
        for a in answers:
            print(f"  -> {a}")
        if explained:
            print(format_explanation(explained, [tok.decode([t]) for t in scored]))
            if len(explained) == 1:
                print("(this model has no path to remove: no crops reach it and no shortcut)")
        if c["save"] and q == questions[0]:
            try:
                save_png(c["save"], np.asarray(img), q or "describe the image.", answers, explained)
            except (OSError, ValueError) as e:
                fail(f"--save={c['save']!r} could not be written ({type(e).__name__}: {e})")
    if c["save"]:
        print(f"\nsaved {c['save']}")


if __name__ == "__main__":
    exit_in_one_line("sample.py")  # Ctrl-C, a kill, a full disk: one line, not a traceback
    main(sys.argv[1:])
