"""
A real-image example of "your own data": scikit-learn's handwritten digits (1797 scans of 8x8
pixels, 16 grey levels, bundled inside the scikit-learn wheel: nothing is downloaded), written
as 64x64 PNGs plus a LLaVA JSON with three question kinds. A demo only: scikit-learn is not a
dependency of this repository (`pip install scikit-learn` to run it).

$ python data/digits_example.py --out_dir=out/digits
$ python train.py --data=out/digits/train.json --image_root=out/digits/images --eval_data=out/digits/test.json

Prints the majority-answer baseline per question kind of the test split.
"""
import collections
import json
import os
import sys

import numpy as np
from PIL import Image

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def questions(digit):
    """Three kinds (train.py names a kind by the question's first two words)."""
    return [("what digit is this?", NAMES[digit]),
            ("odd or even?", "even" if digit % 2 == 0 else "odd"),
            ("more than four?", "yes" if digit > 4 else "no")]


def make(out_dir, test_fraction=0.2, seed=0):
    """Write every digit into out_dir/images, a seeded test_fraction of them into test.json and
    the rest into train.json. Returns {'train': records, 'test': records}."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    perm = np.random.default_rng(seed).permutation(len(digits.images))
    n_test = int(len(perm) * test_fraction)
    splits = {"test": [], "train": []}
    for rank, i in enumerate(perm):
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)            # (8, 8), 0..16 -> 0..255
        name = f"{i:04d}.png"
        Image.fromarray(pixels, "L").resize((64, 64), Image.BILINEAR).save(os.path.join(out_dir, "images", name))
        conv = []
        for k, (q, a) in enumerate(questions(int(digits.target[i]))):
            conv += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q}, {"from": "gpt", "value": a}]
        splits["test" if rank < n_test else "train"].append({"id": f"digit-{i:04d}", "image": name,
                                                               "conversations": conv})
    for split, records in splits.items():
        with open(os.path.join(out_dir, f"{split}.json"), "w") as f:
            json.dump(records, f, indent=1)
    return splits


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script: make the repo root importable
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = dict(a.removeprefix("--").split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    if len(args) != len(sys.argv) - 1 or set(args) - {"out_dir", "seed"}:
        sys.exit("usage: python data/digits_example.py [--out_dir=out/digits] [--seed=0]")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        sys.exit("data/digits_example.py: needs scikit-learn for its bundled digits; pip install scikit-learn")
    out_dir = args.get("out_dir", "out/digits")
    splits = make(out_dir, seed=int(args.get("seed", 0)))
    print(f"wrote {sum(map(len, splits.values()))} digits to {out_dir}/images, "
          f"{len(splits['train'])} in train.json, {len(splits['test'])} in test.json")
    counts = collections.defaultdict(collections.Counter)
    for r in splits["test"]:
        for q, a in zip(r["conversations"][::2], r["conversations"][1::2]):
            counts[" ".join(q["value"].split("\n")[-1].split()[:2])][a["value"]] += 1  # as train.py names kinds
    for kind, c in counts.items():
        print(f"  test majority answer for '{kind}' questions: {c.most_common(1)[0][0]} "
              f"({c.most_common(1)[0][1] / sum(c.values()):.3f})")
