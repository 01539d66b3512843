"""
An example of "your own data": a LLaVA-format dataset written as image files + JSON, made of
photo-like pictures that are not shapes scenes (soft, shaded balls on smooth noisy backgrounds,
JPEG and PNG, various sizes and modes), with three question kinds. We cannot download real
photos here, so this stands in for them; train.py reads it exactly as it would read yours.

$ python data/own_example.py --out_dir=out/own --n=1500
$ python train.py --data=out/own/train.json --image_root=out/own/images

Prints the majority-answer baseline per question kind of the held-out share train.py evaluates on.
"""
import collections
import json
import os
import sys

import numpy as np
from PIL import Image, ImageFilter

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 210), "yellow": (225, 200, 40)}


def picture(rng):
    """One photo-like picture (a PIL image of a random size and mode) and its facts."""
    w, h = int(rng.integers(72, 160)), int(rng.integers(72, 160))
    noise = rng.random((h // 8 + 2, w // 8 + 2, 3)) * 90 + rng.integers(60, 140)  # smooth background
    bg = Image.fromarray(noise.astype(np.uint8)).resize((w, h), Image.BICUBIC)
    img = np.asarray(bg, dtype=np.float32).copy()
    n = int(rng.integers(1, 4))
    colour = str(rng.choice(list(COLOURS)))
    yy, xx = np.mgrid[0:h, 0:w]
    side = str(rng.choice(["left", "right"]))
    centres = []
    for _ in range(n):  # balls of one colour, all in one half, shaded by a light from the top left
        r = rng.uniform(0.09, 0.14) * min(w, h)
        for _ in range(100):
            cx, cy = rng.uniform(r, w / 2 - r), rng.uniform(r, h - r)
            cx += w / 2 if side == "right" else 0
            if all((cx - x) ** 2 + (cy - y) ** 2 > (2.1 * r) ** 2 for x, y in centres):
                break
        centres.append((cx, cy))
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r
        light = np.clip(1.15 - 0.5 * np.sqrt((xx - cx + r / 2) ** 2 + (yy - cy + r / 2) ** 2) / r, 0.35, 1.1)
        inside = d < 1
        img[inside] = (np.array(COLOURS[colour]) * light[..., None])[inside]
    im = Image.fromarray(img.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    return im, {"colour": colour, "count": n, "side": side}


def make(out_dir, n=1500, seed=0):
    """Write n pictures into out_dir/images and their conversations into out_dir/train.json."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    records = []
    for i in range(n):
        im, facts = picture(rng)
        name = f"{i:05d}." + ("jpg" if i % 2 else "png")
        if i % 5 == 0:
            im = im.convert("RGBA")  # modes other than RGB are converted by the reader
        (im.convert("RGB") if name.endswith("jpg") else im).save(os.path.join(out_dir, "images", name))
        kinds = [("what colour are the balls?", facts["colour"]),
                 ("how many balls are there?", ["one", "two", "three"][facts["count"] - 1]),
                 ("which side are the balls on?", facts["side"])]
        conv = []
        for k, (q, a) in enumerate(kinds):
            conv += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q}, {"from": "gpt", "value": a}]
        records.append({"id": f"own-{i:05d}", "image": name, "conversations": conv})
    with open(os.path.join(out_dir, "train.json"), "w") as f:
        json.dump(records, f, indent=1)
    return records


if __name__ == "__main__":
    from configurator import configure_or_exit
    config = {
        "out_dir": "out/own",  # writes out_dir/images/ and out_dir/train.json
        "n": 1500,             # pictures, three questions each
        "seed": 0,
    }
    configure_or_exit(config, sys.argv[1:], "own_example.py")
    out_dir = config["out_dir"]
    records = make(out_dir, config["n"], config["seed"])
    counts = collections.defaultdict(collections.Counter)
    for r in records:
        for q, a in zip(r["conversations"][::2], r["conversations"][1::2]):
            counts[" ".join(q["value"].split("\n")[-1].split()[:2])][a["value"]] += 1  # as train.py names kinds
    print(f"wrote {len(records)} pictures to {out_dir}/images and {out_dir}/train.json")
    for kind, c in counts.items():
        print(f"  majority answer for '{kind}' questions: {c.most_common(1)[0][0]} ({c.most_common(1)[0][1] / sum(c.values()):.3f})")
