"""
Generate the shapes dataset: train/val/test splits of rendered scenes with captions and VQA,
and a compositional split whose scenes hold attribute pairs no other split has (render.HELD_OUT_PAIRS).

$ python data/shapes/prepare.py                      # 20k/1k/1k scenes into data/shapes/
$ python data/shapes/prepare.py --max_objects=2 --question_types=colour,shape,count,position,texture
$ python data/shapes/prepare.py --preview=data/preview.png   # only draw a few val scenes

Writes into out_dir: {split}_images.npy uint8 (N, H, W, 3), {split}_masks.npy uint8 (N, H, W)
(object index + 1 per pixel, 0 = background), {split}.jsonl (one scene per line: id, objects,
caption, qa; test also qa_paraphrase, its questions in held-out wordings) and meta.json (the
settings and each file's size, so callers can tell whether the files are stale or incomplete; it
is written last, see prepare()).
"""
import json
import os
import sys
import textwrap
import time

import numpy as np

try:
    import fcntl  # POSIX; Windows has none: there, start runs on one data folder one at a time
except ImportError:
    fcntl = None

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.shapes import questions as Q
from data.shapes import render as R

SPLITS = ["train", "val", "test", "compositional"]
# Each split owns a fixed slice of the scene-hash space, so no scene can be in two splits and
# each split is still generated on its own (changing n_train leaves val and test unchanged).
# The compositional split takes any hash: its scenes all hold a held-out attribute pair, which
# no scene of the other three has, so it cannot share a scene with them.
HASH_BUCKETS = {"train": range(0, 8), "val": range(8, 9), "test": range(9, 10), "compositional": range(0, 10)}


def check_settings(min_objects, max_objects, question_types, image_size):
    """A one-line ValueError for settings no scene can be drawn with."""
    if not 1 <= min_objects <= max_objects <= 9:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= 9 (one object per grid cell), got {min_objects}, {max_objects}")
    if image_size % 2 or image_size < 48:
        raise ValueError(f"image_size must be even and >= 48 (the low view is image_size/2), got {image_size}")
    if isinstance(question_types, str):
        raise ValueError(f"question_types must be a list of types, got the string {question_types!r}")
    bad = [t for t in question_types or [] if t not in Q.QUESTION_TYPES]
    if bad:
        raise ValueError(f"unknown question types {bad}; valid: {Q.QUESTION_TYPES}")


def make_split(split, n, seed=0, min_objects=1, max_objects=4, question_types=None, image_size=64):
    """n scenes of one split: images (n, H, W, 3) uint8, masks (n, H, W) uint8, records list[dict]."""
    check_settings(min_objects, max_objects, question_types, image_size)
    rng = np.random.default_rng([seed, SPLITS.index(split)])  # one stream per split for the scenes ...
    qrng = np.random.default_rng([seed, SPLITS.index(split), 1])  # ... and one for the questions, so
    # that rewording a question leaves every image as it was (a trained ViT stays valid)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((n, image_size, image_size), dtype=np.uint8)
    records = []
    compositional = split == "compositional"
    while len(records) < n:
        objects = R.sample_scene(rng, min_objects, max_objects, image_size, allow_held_out=compositional)
        if int(R.scene_hash(objects)[:8], 16) % 10 not in HASH_BUCKETS[split]:
            continue  # this scene belongs to another split
        new = [o for o in objects if R.held_out_pair(o)]
        if compositional and not new:
            continue  # every compositional scene shows at least one unseen pair ...
        target = R.pick(new, qrng) if compositional else None  # ... and is asked about it
        i = len(records)
        images[i], masks[i] = R.render(objects, image_size)
        records.append({"id": f"{split}-{i:05d}", "objects": objects, "caption": Q.caption(objects),
                        "qa": Q.questions(objects, qrng, question_types, target=target)})
        if split == "test":  # the same kinds of question, worded as training never words them
            records[-1]["qa_paraphrase"] = Q.questions(objects, qrng, question_types, held_out=True)
    return images, masks, records


def prepare(out_dir="data/shapes", n_train=20000, n_val=1000, n_test=1000, seed=0,
            min_objects=1, max_objects=4, question_types=None, image_size=64):
    """Generate all four splits (the compositional one has n_test scenes) into out_dir (see the
    module docstring for the files).

    Atomic: meta.json is removed first and written last, and every file is written under a
    temporary name, synced and renamed; meta.json lists each file's size. So a killed run never
    leaves a folder that reads as complete, nor old splits mixed with new, nor half a file."""
    check_settings(min_objects, max_objects, question_types, image_size)  # before touching the folder
    os.makedirs(out_dir, exist_ok=True)
    meta = settings(n_train, n_val, n_test, seed, min_objects, max_objects, question_types, image_size)
    meta_path = os.path.join(out_dir, "meta.json")
    if os.path.exists(meta_path):
        os.remove(meta_path)  # from here until the end, the folder reads as incomplete
    sizes = {}
    for split, n in zip(SPLITS, (n_train, n_val, n_test, n_test)):
        images, masks, records = make_split(split, n, seed, min_objects, max_objects, question_types, image_size)
        sizes[f"{split}_images.npy"] = write_atomic(os.path.join(out_dir, f"{split}_images.npy"), lambda f: np.save(f, images))
        sizes[f"{split}_masks.npy"] = write_atomic(os.path.join(out_dir, f"{split}_masks.npy"), lambda f: np.save(f, masks))
        sizes[f"{split}.jsonl"] = write_atomic(os.path.join(out_dir, f"{split}.jsonl"),
                                               lambda f: f.writelines((json.dumps(r) + "\n").encode() for r in records))
    write_atomic(meta_path, lambda f: f.write(json.dumps(dict(meta, files=sizes), indent=1).encode()))


def write_atomic(path, write):
    """write(f) on a binary file path + '.<pid>.tmp', fsync, rename it to path. Returns the size in bytes.
    A failed write (a full disk) leaves path as it was and raises an OSError that names path."""
    tmp = f"{path}.{os.getpid()}.tmp"  # this process's own: two writers never rename each other's file
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):  # a SIGKILL leaves it instead: never read
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno and e.filename in (None, tmp):  # f.write names no file
            raise OSError(e.errno, e.strerror, path) from None
        raise
    return os.path.getsize(path)


def settings(n_train=20000, n_val=1000, n_test=1000, seed=0, min_objects=1, max_objects=4,
             question_types=None, image_size=64):
    return {"version": R.VERSION, "n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed,
            "min_objects": min_objects, "max_objects": max_objects,
            "question_types": list(question_types or Q.QUESTION_TYPES), "image_size": image_size}


def read_meta(out_dir):
    """meta.json of out_dir without its file list, or None if the data there is not complete: no
    meta.json (a prepare was killed), or a listed file missing or of another size (cut short)."""
    try:
        with open(os.path.join(out_dir, "meta.json")) as f:
            meta = json.load(f)
        files = meta.pop("files")
        if all(os.path.getsize(os.path.join(out_dir, name)) == size for name, size in files.items()):
            return meta
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        pass
    return None


def ensure_prepared(out_dir="data/shapes", **kwargs):
    """prepare() unless out_dir holds complete data made with these settings. Returns True if it generated.

    Runs started together on one folder (experiments.py --jobs=2) take turns on a lock file: the
    first generates, the others wait, then find the data complete and only read it."""
    s = settings(**kwargs)
    if read_meta(out_dir) == s:
        return False
    check_settings(s["min_objects"], s["max_objects"], s["question_types"], s["image_size"])  # before making the folder
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ".lock"), "w") as lock:
        if fcntl:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        if read_meta(out_dir) == s:  # another run made them while this one waited
            return False
        prepare(out_dir, **kwargs)
    return True


def load_split(out_dir, split):
    """images (N, H, W, 3) uint8, masks (N, H, W) uint8, records list[dict] of one split."""
    path = os.path.join(out_dir, f"{split}.jsonl")
    if read_meta(out_dir) is None or not os.path.exists(path):
        raise FileNotFoundError(f"no complete shapes data in {out_dir} ({split} split): run the training command "
                                f"again (it generates them) or python data/shapes/prepare.py --out_dir={out_dir}")
    try:
        with open(path) as f:
            records = [json.loads(line) for line in f]
        images = np.load(os.path.join(out_dir, f"{split}_images.npy"))
        masks = np.load(os.path.join(out_dir, f"{split}_masks.npy"))
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"the {split} split in {out_dir} is corrupt ({type(e).__name__}): delete the folder, "
                         f"it is generated again") from None
    if not len(images) == len(masks) == len(records):
        raise ValueError(f"the {split} split in {out_dir} has {len(images)} images, {len(masks)} masks and "
                         f"{len(records)} records: delete the folder, it is generated again")
    return images, masks, records


def preview(path, n=6, seed=0, min_objects=1, max_objects=4, image_size=64):
    """A PNG grid of n val scenes: full view, low view, caption and two Q/A each."""
    from PIL import Image, ImageDraw, ImageFont
    images, _, records = make_split("val", n, seed, min_objects, max_objects, None, image_size)
    zoom = 192 // image_size
    side, text_w = image_size * zoom, 470
    sheet = Image.new("RGB", (2 * side + text_w + 30, n * (side + 10) + 30), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    half = image_size // 2
    for x, label in ((10, f"full view {image_size}x{image_size}"), (side + 20, f"low view {half}x{half}"), (2 * side + 30, "caption and two Q/A")):
        draw.text((x, 8), label, fill="black", font=font)
    for i, (img, r) in enumerate(zip(images, records)):
        y = 30 + i * (side + 10)
        low = R.low_view(img).round().astype(np.uint8)
        sheet.paste(Image.fromarray(img).resize((side, side), Image.NEAREST), (10, y))
        sheet.paste(Image.fromarray(low).resize((side, side), Image.NEAREST), (side + 20, y))
        lines = textwrap.wrap(r["caption"], 60)
        qa = [q for t in ("text", "texture", "shape") for q in r["qa"] if q["type"] == t][:2]  # the fine detail first
        lines += [f"Q: {q['question']} A: {q['answer']}" for q in qa]
        draw.multiline_text((2 * side + 30, y + 4), "\n".join(lines), fill="black", font=font, spacing=6)
    sheet.save(path)


if __name__ == "__main__":
    from configurator import configure_or_exit
    config = {
        "out_dir": "data/shapes",   # where the .npy/.jsonl files and meta.json go
        "n_train": 20000, "n_val": 1000, "n_test": 1000,  # scenes per split
        "seed": 0,
        "min_objects": 1, "max_objects": 4,  # objects per scene
        "question_types": "",       # comma-separated, e.g. colour,shape; '' = all ten
        "image_size": 64,           # full resolution; the low view is half of it
        "preview": "",              # a PNG path: only draw a few val scenes there, write no data
    }
    configure_or_exit(config, sys.argv[1:], "prepare.py")
    types = config.pop("question_types")
    types = types.split(",") if types else None  # None: all types
    if config["preview"]:
        preview(config["preview"], seed=config["seed"], min_objects=config["min_objects"],
                max_objects=config["max_objects"], image_size=config["image_size"])
        print(f"wrote {config['preview']}")
        sys.exit()
    config.pop("preview")
    t0 = time.time()
    try:
        prepare(question_types=types, **config)
    except ValueError as e:
        sys.exit(f"prepare.py: {e}")
    print(f"wrote {config['n_train']}/{config['n_val']}/{config['n_test']} scenes to {config['out_dir']} in {time.time() - t0:.1f}s")
