"""
Bring your own data in LLaVA's conversation format: a JSON list of records

    {"id": "0001", "image": "0001.png",
     "conversations": [{"from": "human", "value": "<image>\\nwhat colour is the circle?"},
                       {"from": "gpt", "value": "red"}, ...more human/gpt pairs...]}

plus a folder of images (paths in "image" are relative to it, and must stay inside it; with no
image_root, the JSON's own folder is that folder). Any image mode and size is
accepted (16-bit and float images are scaled to 8 bits): converted to RGB, resized keeping its
aspect ratio and padded to a square.
read_llava loads every image at once (toy-sized data: simple and fast to train from).
"""
import json
import os

import numpy as np
from PIL import Image

from data.prompt import CAPTION_QUESTION

PAD = (0, 0, 0)


def to_rgb(im):
    """A PIL image of any mode -> mode RGB. convert("RGB") clips 16-bit ('I;16', 'I') and float ('F')
    pixels at 255 (a 16-bit scan comes out black and white), so those are scaled to 0..255 first:
    'I;16*' by its 16-bit range, 'I' and 'F' by the range their values imply (1, 255, 65535 or max)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64).clip(min=0)                        # (H, W)
        top = a.max(initial=0)
        full = 65535 if im.mode.startswith("I;16") else next((r for r in (1, 255, 65535) if top <= r), top)
        if im.mode == "I" and full == 1:
            full = 255  # integers 0/1 are 8-bit values, not a 0..1 range
        im = Image.fromarray(np.round(a * (255 / full)).astype(np.uint8), "L")
    elif im.mode == "La":  # premultiplied alpha: Pillow converts it to LA only
        im = im.convert("LA")
    return im.convert("RGB")


def load_image(path, image_size=64):
    """Any image file -> (image_size, image_size, 3) uint8: RGB, resized to fit, padded to square."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: image not found; check the image path and image_root")
    if not os.path.isfile(path):  # opening a FIFO would wait forever for a writer; a folder is no image either
        raise ValueError(f"{path}: not a regular file (a folder, a FIFO or a device): give an image file")
    try:
        with Image.open(path) as im:
            im.load()
            im = to_rgb(im)
    except Exception as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e}); re-save it as PNG or JPEG") from None
    w, h = im.size
    if (w, h) != (image_size, image_size):
        scale = image_size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new("RGB", (image_size, image_size), PAD)
        canvas.paste(im.resize((nw, nh), Image.LANCZOS), ((image_size - nw) // 2, (image_size - nh) // 2))
        im = canvas
    return np.asarray(im, dtype=np.uint8).copy()


def read_llava(json_path, image_root, image_size=64):
    """LLaVA JSON -> list of {"id", "image": (S2, S2, 3) uint8, "turns": [(question, answer), ...]}.

    "<image>" is removed from the questions (our model always sees the image before the text).
    """
    if not os.path.isfile(json_path):
        raise FileNotFoundError(f"{json_path}: no such file; give the path of a LLaVA-format JSON list")
    if image_root and not os.path.isdir(image_root):
        raise FileNotFoundError(f"image_root={image_root!r} is not a folder: give the folder the 'image' paths are relative to")
    if os.path.getsize(json_path) == 0:
        raise ValueError(f"{json_path}: the file is empty (0 bytes); it should hold a JSON list of records")
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    except RecursionError:  # json recurses once per level: [[[[...]]]] 200000 deep
        raise ValueError(f"{json_path}: nested too deeply to be a LLaVA JSON list of records") from None
    if not isinstance(data, list):
        raise ValueError(f"{json_path}: expected a JSON list of records, got {type(data).__name__}")
    if not data:
        raise ValueError(f"{json_path}: the list of records is empty")
    root = os.path.realpath(image_root or os.path.dirname(os.path.abspath(json_path)))
    examples = []
    for k, r in enumerate(data):
        where = f"{json_path}: record {r.get('id', k) if isinstance(r, dict) else k}"
        if not isinstance(r, dict) or not {"id", "image", "conversations"} <= r.keys():
            raise ValueError(f"{where}: needs the keys 'id', 'image' and 'conversations'")
        if not isinstance(r["image"], str) or not r["image"]:
            raise ValueError(f"{where}: 'image' must be a file name, got {r['image']!r}")
        conv = r["conversations"]
        if not isinstance(conv, list) or not conv:
            raise ValueError(f"{where}: empty conversation; give at least one human/gpt pair")
        if len(conv) % 2 or any(not isinstance(t, dict) or t.get("from") != ("human", "gpt")[i % 2]
                                or not isinstance(t.get("value"), str) for i, t in enumerate(conv)):
            raise ValueError(f"{where}: conversations must alternate human/gpt turns with string values, starting with human")
        turns = [(conv[i]["value"].replace("<image>", "").strip(), conv[i + 1]["value"].strip())
                 for i in range(0, len(conv), 2)]
        if any(not q or not a for q, a in turns):
            raise ValueError(f"{where}: a question or an answer is empty")
        path = os.path.realpath(os.path.join(root, r["image"]))  # '..', a symlink: where it really is
        if os.path.commonpath([root, path]) != root:  # a JSON from elsewhere must not read any file on the machine
            inside = f"image_root={root}" if image_root else f"the JSON's folder {root} (image_root='')"
            raise ValueError(f"{where}: image {r['image']!r} is {path}, outside {inside}: give paths inside it "
                             f"(no '..', no absolute path, no link out)")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{where}: image not found: {path}; check image_root={image_root!r} "
                                    f"(the folder the 'image' paths are relative to)")
        image = load_image(path, image_size)
        examples.append({"id": str(r["id"]), "image": image, "turns": turns})
    return examples


def write_llava(records, images, json_path, image_root):
    """Write images as PNGs into image_root and the conversations as LLaVA JSON.

    records: shapes records (their caption becomes the first turn, then the qa) or examples as
    read_llava returns them (with "turns"); images: (N, H, W, 3) uint8, in the same order.
    """
    assert len(records) == len(images)
    os.makedirs(image_root, exist_ok=True)
    out = []
    for r, img in zip(records, images):
        if "turns" in r:
            turns = r["turns"]
        else:
            turns = [(CAPTION_QUESTION, r["caption"])] + [(q["question"], q["answer"]) for q in r["qa"]]
        name = f"{r['id']}.png"
        Image.fromarray(np.asarray(img, dtype=np.uint8)).save(os.path.join(image_root, name))
        conv = []
        for i, (q, a) in enumerate(turns):
            conv += [{"from": "human", "value": ("<image>\n" if i == 0 else "") + q}, {"from": "gpt", "value": a}]
        out.append({"id": r["id"], "image": name, "conversations": conv})
    with open(json_path, "w") as f:
        json.dump(out, f, indent=1)

