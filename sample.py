"""
Ask a trained SparseCut model about an image.

    python sample.py --image=photo.png --question="what colour is the object at the top left?"
    python sample.py --split=test --index=7          # a scene of the shapes data (its questions)
    python sample.py --image=photo.png               # no question: a caption

Greedy by default (temperature=0); --temperature/--top_k/--num_samples to sample. The image is
converted to RGB and resized/padded to the model's full resolution.
"""
import os
import sys

import numpy as np
import torch

from checkpoint import load_model
from configurator import configure_or_exit
from data.batches import to_float
from data.llava import load_image
from data.prompt import caption_prompt, vqa_prompt
from data.tokenizer import get_tokenizer
from fusion import make_views

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
config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, float, str)}


def fail(msg):
    sys.exit(f"sample.py: {msg}")


def save_png(path, img, q, answers):
    """The full-resolution image and the low view (as the model's low view sees it), with the text."""
    from PIL import Image, ImageDraw
    x = to_float(img[None])
    low = make_views(x)[0][0].permute(1, 2, 0).mul(255).round().byte().numpy()
    z = 4
    full_im = Image.fromarray(img).resize((img.shape[1] * z, img.shape[0] * z), Image.NEAREST)
    low_im = Image.fromarray(low).resize((img.shape[1] * z, img.shape[0] * z), Image.NEAREST)
    lines = [f"Q: {q}"] + [f"A: {a}" for a in answers]
    top = 26  # room for the panel labels
    W, H = full_im.width * 2 + 30, top + full_im.height + 20 + 14 * len(lines) + 10
    sheet = Image.new("RGB", (W, H), "white")
    sheet.paste(full_im, (10, top))
    sheet.paste(low_im, (full_im.width + 20, top))
    draw = ImageDraw.Draw(sheet)
    S = img.shape[0]
    draw.text((10, 8), f"full resolution {S}x{S} (cut into the 4 crops)", fill="black")
    draw.text((full_im.width + 20, 8), f"low view {S // 2}x{S // 2}", fill="black")
    for i, line in enumerate(lines):
        draw.text((10, top + full_im.height + 8 + 14 * i), line, fill="black")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sheet.save(path)


def main(argv):
    configure_or_exit(config, argv, "sample.py")
    c = config
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
        from data.shapes.prepare import load_split
        try:
            images, _, records = load_split(tc["data_dir"], c["split"])
        except FileNotFoundError as e:
            fail(e)
        if not 0 <= c["index"] < len(images):
            fail(f"--index={c['index']} is out of range: the {c['split']} split has {len(images)} scenes")
        img, rec = images[c["index"]], records[c["index"]]
        print(f"scene {rec['id']}: {rec['caption']}")
        if not questions:
            questions = [q["question"] for q in rec["qa"]] + [""]
    else:
        fail("nothing to look at: give --image=path or --split=test --index=N")
    questions = questions or [""]

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
        idx = torch.tensor([ids] * c["num_samples"], device=c["device"])     # (num_samples, T)
        out = model.generate(x.expand(c["num_samples"], -1, -1, -1), idx,
                             min(c["max_new_tokens"], budget - len(ids)), temperature=c["temperature"],
                             top_k=c["top_k"] or None, stop_token=tok.eot_token)
        answers = []
        for row in out[:, len(ids):].tolist():
            answers.append(tok.decode(row[:row.index(tok.eot_token)] if tok.eot_token in row else row).strip())
        print(f"\n{prompt}")
        for a in answers:
            print(f"  -> {a}")
        if c["save"] and q == questions[0]:
            save_png(c["save"], np.asarray(img), q or "describe the image.", answers)
    if c["save"]:
        print(f"\nsaved {c['save']}")


if __name__ == "__main__":
    main(sys.argv[1:])
