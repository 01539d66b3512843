"""
Is the fine detail really gone from the low view? Train a linear classifier (softmax
regression) on each object's pixels, once in the full view (64x64) and once in the low view
(the 2x area downsample, 32x32), and compare test accuracies with chance.

$ python data/shapes/legibility.py [--n_train=4000 --n_test=1000 --seed=0]

Features: a crop at the object's box, minus the object's mean colour (so the classifier cannot
lean on colour), zero outside the object. Shape is the control: it must stay legible at low res.
"""
import os
import sys

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.shapes import render as R
from data.shapes.prepare import make_split


def object_features(images, masks, records, attribute, zoom):
    """(n_objects, D) float32 features and (n_objects,) labels; zoom 1 = full view, 2 = low view."""
    if zoom == 2:
        images, masks = R.low_view(images), masks[:, ::2, ::2]  # masks are block aligned: exact
    side = R.sizes_px(64)["large"] // zoom
    values = {"texture": R.TEXTURES, "text": R.DIGITS, "shape": R.SHAPES}[attribute]
    xs, ys = [], []
    for img, m, r in zip(images.astype(np.float32), masks, records):
        for i, o in enumerate(r["objects"]):
            if attribute not in o:
                continue
            x0, y0 = o["box"][0] // zoom, o["box"][1] // zoom
            crop = np.zeros((side, side, 3), np.float32)
            inside = np.zeros((side, side), bool)
            c, k = img[y0:y0 + side, x0:x0 + side], m[y0:y0 + side, x0:x0 + side] == i + 1
            crop[:c.shape[0], :c.shape[1]], inside[:k.shape[0], :k.shape[1]] = c, k
            crop = np.where(inside[..., None], crop - crop[inside].mean(axis=0), 0) / 255
            xs.append(np.concatenate([crop.ravel(), inside.ravel()]))
            ys.append(values.index(o[attribute]))
    return torch.tensor(np.array(xs)), torch.tensor(ys)


def linear_probe(x, y, x_test, y_test, steps=300):
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], int(y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (model(x_test).argmax(1) == y_test).float().mean().item()


if __name__ == "__main__":
    from configurator import configure_or_exit
    config = {
        "n_train": 4000,   # scenes to fit the classifiers on
        "n_test": 1000,    # scenes to score them on
        "seed": 0,         # data seed
    }
    configure_or_exit(config, sys.argv[1:], "legibility.py")
    torch.set_num_threads(1)  # tiny matmuls: more threads only contend
    train, test = make_split("train", config["n_train"], seed=config["seed"]), make_split("test", config["n_test"], seed=config["seed"])
    print("| attribute | chance | full view 64x64 | low view 32x32 | test objects |")
    print("|---|---|---|---|---|")
    for attribute, chance in (("texture", 1 / 4), ("text", 1 / 10), ("shape", 1 / 4)):
        acc = {}
        for zoom in (1, 2):
            x, y = object_features(*train, attribute, zoom)
            x_test, y_test = object_features(*test, attribute, zoom)
            acc[zoom] = linear_probe(x, y, x_test, y_test)
        print(f"| {attribute} | {chance:.2f} | {acc[1]:.3f} | {acc[2]:.3f} | {len(y_test)} |")
