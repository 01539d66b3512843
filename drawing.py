"""
The few PIL drawing steps the plots share (no matplotlib): experiments.py's bars per question
type, probe.py's lines per ViT level (draw_levels, below) and sample.py --explain's bars per
removed path all have a y axis of gridlines, dashed reference lines and a legend.
"""
import math
import os

from PIL import Image, ImageDraw

from checkpoint import check_result_path
from data.shapes.prepare import write_atomic

# matplotlib's tab20 order, then black: neighbours differ, so a legend reads without a key
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
           (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (0, 0, 0)]


def check_image_path(path):
    """A ValueError unless an image can be written at path: an extension PIL knows, a file name
    (not a folder) whose folder exists or can be made and written. Checked before the work."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in Image.registered_extensions():
        raise ValueError(f"unknown image extension {ext!r}; use .png or .jpg")
    check_result_path(path)


def canvas(width, height):
    img = Image.new("RGB", (width, height), "white")
    return img, ImageDraw.Draw(img)


def y_axis(d, left, right, top, height, top_value=1.0, n=5, fmt="{:.1f}"):
    """Gridlines at 0, top_value / n, ..., top_value across [left, right], each value written left
    of the axis. Returns y_of(value) -> pixel row: top_value at `top`, 0 at `top + height`."""
    y_of = lambda v: top + height - int(v / top_value * height)
    for i in range(n + 1):
        v = top_value * i / n
        d.line([(left, y_of(v)), (right, y_of(v))], fill=(225, 225, 225))
        d.text((left - 26, y_of(v) - 6), fmt.format(v), fill="black")
    return y_of


def dashed(d, x0, x1, y, fill="black", width=2):
    """A horizontal dashed line from x0 to about x1: 3 px drawn, 3 px left out."""
    for x in range(x0, x1, 6):
        d.line([(x, y), (x + 3, y)], fill=fill, width=width)


def legend(d, x, y, entries):
    """entries [(text, colour, mark)], a row of 14 px each from y down; mark: 'box' (a bar), 'line'
    (a series of points) or 'dashed' (a reference level)."""
    for i, (text, colour, mark) in enumerate(entries):
        r = y + 14 * i
        if mark == "box":
            d.rectangle([x, r, x + 10, r + 10], fill=colour)
        elif mark == "line":
            d.line([(x, r + 5), (x + 14, r + 5)], fill=colour, width=2)
        else:
            dashed(d, x, x + 14, r + 5, fill=colour)
        d.text((x + 20, r - 1), text, fill="black")


def save(img, path):
    """Written atomically, as every result file: a kill leaves the previous picture or the new one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    kind = Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG")
    write_atomic(path, lambda f: img.save(f, format=kind))


# -----------------------------------------------------------------------------
# probe.py --plot: what each ViT level knows

LEVELS_SIZE = (860, 320)  # two panels of 300 x 220 px, the legend beside them


def draw_levels(results, chance, main_level, path, title):
    """probe.py's results {level: {'view/attribute': {'acc', 'var_share'}}}: accuracy (each chance
    {'view/attribute': share} dashed in its line's colour) and var_share per level, a line per
    view/attribute. An attribute has one hue: dark with dots for the low view, light with squares
    for the crops."""
    levels, keys = list(results), list(results[next(iter(results))])
    attributes = list(dict.fromkeys(k.split("/")[1] for k in keys))  # in order of first appearance
    colour = lambda key: COLOURS[attributes.index(key.split("/")[1]) % 10 + (0 if key.startswith("low/") else 10)]
    W, H, top, left, panel = LEVELS_SIZE[0], 220, 34, 40, 300
    img, d = canvas(*LEVELS_SIZE)
    for p, (field, name) in enumerate((("acc", "held-out accuracy of a linear probe"),
                                       ("var_share", "var_share: share of the variance explained"))):
        x0 = left + p * (panel + 50)
        top_value = 1.0 if field == "acc" else max(0.1, math.ceil(10 * max(r[k][field] for r in results.values()
                                                                                for k in keys)) / 10)
        y_of = y_axis(d, x0, x0 + panel, top, H, top_value)
        x_of = lambda i: x0 + 12 + i * (panel - 24) // max(1, len(levels) - 1)
        d.text((x0, top - 22), name, fill="black")
        for i, level in enumerate(levels):
            d.text((x_of(i) - 8, top + H + 6), level + ("\nmain" if level == str(main_level) else ""), fill="black")
        for key in keys:
            points = [(x_of(i), y_of(results[level][key][field])) for i, level in enumerate(levels)]
            d.line(points, fill=colour(key), width=2)
            for x, y in points:
                (d.ellipse if key.startswith("low/") else d.rectangle)([x - 3, y - 3, x + 3, y + 3], fill=colour(key))
            if field == "acc" and key in chance:
                dashed(d, x0, x0 + panel, y_of(chance[key]), fill=colour(key), width=1)
    legend(d, W - 150, top, [(key, colour(key), "line") for key in keys] +
           [("chance (train majority)", "black", "dashed")] * bool(chance))
    d.text((left, top + H + 40), f"{title}  (x: ViT level; embed = patch embedding)", fill="black")
    save(img, path)
