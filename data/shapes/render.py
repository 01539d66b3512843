"""
Scenes of simple shapes: sample a scene graph, render it (its captions and questions: questions.py).

A scene is a list of objects (dicts), one per cell of a 3x3 grid, in reading order. The
image is rendered at full resolution (2S x 2S, default 64x64); the model's low view is its
2x area downsample (S x S). Everything here is built so that the fine detail (texture,
digits) is legible at full resolution and *exactly* gone in the low view:
- every object is aligned to the 2x2 pixel blocks of the downsample (even coordinates,
  even sizes, masks made of whole blocks), so no block mixes object and background;
- every texture and every digit is a brightness pattern of period 2 whose 2x2 block sum is
  zero, so each block of a textured object averages to exactly the solid colour.
Period-3 patterns would survive the downsample as aliased stripes: don't add any.
"""
import hashlib
import json

import numpy as np
from PIL import Image, ImageDraw

VERSION = 7  # bump when a change here or in questions.py changes the generated data (invalidates cached data)

SHAPES = ["circle", "square", "triangle", "cross"]
# well separated colours, every channel in [40, 195] so the texture offsets (-40..+60) fit in uint8
COLOURS = {
    "red": (195, 45, 45),
    "green": (45, 160, 60),
    "blue": (45, 80, 195),
    "yellow": (195, 185, 45),
    "purple": (135, 55, 180),
    "cyan": (45, 175, 185),
}
SIZES = ["small", "large"]
TEXTURES = ["solid", "striped", "checked", "dotted"]
DIGITS = [str(d) for d in range(10)]
ROWS = ["top", "middle", "bottom"]
COLS = ["left", "centre", "right"]
POSITIONS = [r + " " + c if (r, c) != ("middle", "centre") else "centre" for r in ROWS for c in COLS]
BACKGROUND = (24, 24, 24)

# brightness offsets of each texture on one 2x2 block [[y0x0, y0x1], [y1x0, y1x1]]; each sums to 0
D = 40
PATTERNS = {
    "solid": [[0, 0], [0, 0]],
    "striped": [[D, D], [-D, -D]],  # 1-px horizontal stripes
    "checked": [[D, -D], [-D, D]],  # 1-px checkerboard
    "dotted": [[3 * D // 2, -D // 2], [-D // 2, -D // 2]],  # one bright pixel per block
}
# 3x5 bitmap digits; each glyph pixel is drawn as one 2x2 checked block (6x10 px on the object)
FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111",
}


def sizes_px(image_size):
    """Side in pixels of a small and a large object (even, so they cover whole 2x2 blocks)."""
    return {"small": 2 * round(image_size * 6 / 64), "large": 2 * round(image_size * 9 / 64)}


def shape_mask(shape, side):
    """Boolean (side, side) mask of a shape, made of whole 2x2 blocks."""
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    s = side - 1
    if shape == "circle":
        draw.ellipse([0, 0, s, s], fill=255)
    elif shape == "square":
        draw.rectangle([0, 0, s, s], fill=255)
    elif shape == "triangle":
        draw.polygon([(s / 2, 0), (s, s), (0, s)], fill=255)
    elif shape == "cross":
        a, b = round(side / 3), round(2 * side / 3) - 1
        draw.rectangle([a, 0, b, s], fill=255)
        draw.rectangle([0, a, s, b], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}; valid: {SHAPES}")
    m = np.asarray(img) >= 128
    blocks = m.reshape(side // 2, 2, side // 2, 2).mean(axis=(1, 3)) >= 0.5  # (side/2, side/2)
    return blocks.repeat(2, axis=0).repeat(2, axis=1)


def position_name(row, col):
    return POSITIONS[3 * row + col]


# Attribute pairs that no train/val/test scene contains (objects that would are drawn again);
# every scene of the 'compositional' split has at least one. Spread so that every shape, colour
# and texture still occurs in training, only never in these combinations.
HELD_OUT_PAIRS = [("circle", "red"), ("square", "green"), ("triangle", "blue"), ("cross", "yellow"),
                  ("circle", "striped"), ("square", "checked"), ("triangle", "dotted")]


def unseen_pairs(o):
    """The attributes ('colour', 'texture') whose pair with object o's shape training never shows."""
    return [a for a in ("colour", "texture") if (o["shape"], o[a]) in HELD_OUT_PAIRS]


def held_out_pair(o):
    """True if object o has a shape x colour or shape x texture pair that training never shows."""
    return bool(unseen_pairs(o))


def pick(xs, rng):
    """One of xs, uniformly (scene and question sampling draw every choice this way)."""
    return xs[rng.integers(len(xs))]


def sample_scene(rng, min_objects=1, max_objects=4, image_size=64, allow_held_out=False):
    """A random scene graph: a list of object dicts in reading order (by grid cell). An object with a
    held-out attribute pair (HELD_OUT_PAIRS, unless allow_held_out) or that is another's twin (same
    shape, colour, size and texture) is drawn again, so every object has a unique description."""
    px = sizes_px(image_size)
    cell = image_size // 3
    n = int(rng.integers(min_objects, max_objects + 1))
    objects = []
    for c in sorted(rng.choice(9, size=n, replace=False).tolist()):
        row, col = divmod(c, 3)
        size = SIZES[rng.integers(2)]
        side = px[size]
        # top-left corner: even (block aligned), inside the cell, with a little jitter
        x_lo, x_hi = col * cell, col * cell + cell - side
        y_lo, y_hi = row * cell, row * cell + cell - side
        x0 = 2 * int(rng.integers(-(-x_lo // 2), max(x_hi // 2, -(-x_lo // 2)) + 1))
        y0 = 2 * int(rng.integers(-(-y_lo // 2), max(y_hi // 2, -(-y_lo // 2)) + 1))
        while True:
            obj = {
                "shape": pick(SHAPES, rng),
                "colour": pick(list(COLOURS), rng),
                "size": size,
                "texture": pick(TEXTURES, rng),
            }
            twin = any(all(p[k] == obj[k] for k in ("shape", "colour", "size", "texture")) for p in objects)
            if (allow_held_out or not held_out_pair(obj)) and not twin:  # no twins: every object can be named
                break
        if size == "large" and obj["texture"] == "solid":  # digits only where they fit and nothing else is drawn
            obj["text"] = pick(DIGITS, rng)
        obj.update(row=row, col=col, position=position_name(row, col), box=[x0, y0, x0 + side, y0 + side])
        objects.append(obj)
    return objects


def scene_hash(objects):
    """Content hash of a scene graph (it determines the image exactly)."""
    return hashlib.sha1(json.dumps(objects, sort_keys=True).encode()).hexdigest()


_masks = {}  # (shape, side) -> mask, computed once


def render(objects, image_size=64):
    """Image (H, W, 3) uint8 and object-index mask (H, W) uint8 (0 = background, i+1 = objects[i])."""
    assert image_size % 2 == 0
    img = np.empty((image_size, image_size, 3), dtype=np.int16)
    img[:] = BACKGROUND
    mask = np.zeros((image_size, image_size), dtype=np.uint8)
    for i, o in enumerate(objects):
        x0, y0, x1, y1 = o["box"]
        side = x1 - x0
        key = (o["shape"], side)
        if key not in _masks:
            _masks[key] = shape_mask(*key)
        m = _masks[key]
        offset = np.tile(np.array(PATTERNS[o["texture"]], dtype=np.int16), (side // 2, side // 2))  # (side, side)
        if "text" in o:
            offset = offset + glyph_offset(o["text"], o["shape"], side)
        patch = np.array(COLOURS[o["colour"]], dtype=np.int16) + offset[:, :, None]  # (side, side, 3)
        img[y0:y1, x0:x1][m] = patch[m]
        mask[y0:y1, x0:x1][m] = i + 1
    assert img.min() >= 0 and img.max() <= 255
    return img.astype(np.uint8), mask


def glyph_offset(digit, shape, side):
    """Brightness offsets (side, side) drawing a digit as 2x2 checked blocks, centred on the object."""
    g = np.array([int(b) for b in FONT[digit]], dtype=np.int16).reshape(5, 3)
    g = g.repeat(2, axis=0).repeat(2, axis=1) * np.tile(np.array(PATTERNS["checked"], dtype=np.int16), (5, 3))
    out = np.zeros((side, side), dtype=np.int16)
    gy = side - 10 if shape == "triangle" else 2 * ((side - 10) // 4)  # a triangle is wide only near its base
    gx = 2 * ((side - 6) // 4)
    out[gy:gy + 10, gx:gx + 6] = g
    return out


def low_view(images):
    """The model's low view: 2x area downsample. (..., H, W, 3) uint8 -> (..., H/2, W/2, 3) float32."""
    *lead, h, w, c = images.shape
    return images.reshape(*lead, h // 2, 2, w // 2, 2, c).astype(np.float32).mean(axis=(-4, -2))
