"""
From a dataset on disk to training batches: what train.py, evaluate.py and sample.py share.

- load_dataset: the shapes data (generated when missing) or a LLaVA-format JSON, as Splits.
- Examples: every (scene, question) pair and caption of a split, tokenized once, sampled
  with a torch.Generator (its state is the data position a checkpoint saves).
- stage0_targets: per-patch labels from the object masks, for ViT pretraining.
"""
import os
from dataclasses import dataclass

import numpy as np
import torch

from data.prompt import caption_prompt, encode_example, vqa_prompt
from data.tokenizer import get_tokenizer


@dataclass
class Split:
    images: np.ndarray      # (M, 2S, 2S, 3) uint8
    records: list           # {"id", "qa": [{"type", "question", "answer"}], "objects"?, "caption"?}
    masks: np.ndarray = None  # (M, 2S, 2S) uint8 object index + 1, shapes data only


@dataclass
class Dataset:
    train: Split
    val: Split
    test: Split
    tok: object
    compositional: Split = None  # shapes data only: scenes with attribute pairs training never shows


def to_float(images):
    """uint8 (B, H, W, 3) numpy -> float (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def check_data(cfg):
    """A one-line ValueError for data settings no run can train on, before any data is made or read."""
    if cfg["data"] != "shapes":
        return  # own data: its questions have no types, every one is asked
    from data.shapes.prepare import Q, check_settings
    check_settings(cfg["min_objects"], cfg["max_objects"], cfg["question_types"], cfg["image_size"])
    if not cfg["question_types"]:  # prepare.py reads [] as every type; training would ask no question at all
        raise ValueError(f"question_types=[] asks no questions: give some of {Q.QUESTION_TYPES}")


def load_dataset(cfg, say=print):
    """cfg: the training config dict. 'shapes' data is generated into cfg['data_dir'] if missing."""
    tok = get_tokenizer()
    if cfg["data"] == "shapes":
        from data.shapes.prepare import ensure_prepared, load_split
        kw = dict(n_train=cfg["n_train"], n_val=cfg["n_val"], n_test=cfg["n_test"], seed=cfg["data_seed"],
                  min_objects=cfg["min_objects"], max_objects=cfg["max_objects"],
                  question_types=cfg["question_types"], image_size=cfg["image_size"])
        if os.path.exists(cfg["data_dir"]) and not os.path.isdir(cfg["data_dir"]):
            raise ValueError(f"data_dir={cfg['data_dir']!r} is a file: give a folder for the shapes data")
        try:
            if ensure_prepared(cfg["data_dir"], **kw):
                say(f"generated the shapes data in {cfg['data_dir']}")
        except OSError as e:  # a read-only or full disk: complete data there is only read, never written
            raise ValueError(f"data_dir={cfg['data_dir']!r}: the shapes data must be generated there but cannot be "
                             f"written ({e.strerror}: {e.filename}): give a --data_dir you can write") from None
        splits = {}
        for s in ("train", "val", "test", "compositional"):
            images, masks, records = load_split(cfg["data_dir"], s)
            splits[s] = Split(images, records, masks)
        return Dataset(splits["train"], splits["val"], splits["test"], tok, splits["compositional"])
    from data.llava import read_llava
    if not os.path.isfile(cfg["data"]):
        raise ValueError(f"data={cfg['data']!r} is neither 'shapes' nor an existing LLaVA JSON file")
    train = llava_split(read_llava(cfg["data"], cfg["image_root"], cfg["image_size"]))
    if cfg["eval_data"]:
        test = llava_split(read_llava(cfg["eval_data"], cfg["image_root"], cfg["image_size"]))
    elif len(train.images) < 2:
        raise ValueError(f"{cfg['data']} has {len(train.images)} record: one is held out for testing, so give "
                         f"at least 2 (or a separate eval_data file)")
    else:  # hold out a fixed, seeded share of the images (not of the questions: no image leaks)
        perm = np.random.default_rng(cfg["data_seed"]).permutation(len(train.images))
        n = max(1, int(len(perm) * cfg["eval_fraction"]))
        test, train = subset(train, perm[:n]), subset(train, perm[n:])
    return Dataset(train, test, test, tok)


def llava_split(examples):
    """read_llava's examples -> a Split. Own data has no question types; a question's first two
    words ('what colour', 'how many', 'is there') stand in for one in the per-type table."""
    images = np.stack([e["image"] for e in examples])
    records = [{"id": e["id"], "qa": [{"type": " ".join(q.lower().split()[:2]), "question": q, "answer": a}
                                      for q, a in e["turns"]]} for e in examples]
    return Split(images, records)


def subset(split, ix):
    return Split(split.images[ix], [split.records[i] for i in ix], None if split.masks is None else split.masks[ix])


class Examples:
    """Every question of the given types (and the caption, if any) of a list of records, tokenized."""

    def __init__(self, tok, records, question_types, caption_frac, max_text_len):
        self.max_text_len, self.caption_frac = max_text_len, caption_frac
        rows, self.scene, self.n_objects, self.is_caption = [], [], [], []
        for i, r in enumerate(records):
            pairs = [(vqa_prompt(q["question"]), q["answer"], False) for q in r["qa"]
                     if question_types is None or q["type"] in question_types or "objects" not in r]
            if caption_frac > 0 and r.get("caption"):
                pairs.append((caption_prompt(), r["caption"], True))
            for prompt, answer, cap in pairs:
                try:
                    rows.append(encode_example(tok, prompt, answer, max_text_len))
                except ValueError as e:  # which record: the user has to find it
                    raise ValueError(f"record {r['id']}: {e}") from None
                self.scene.append(i)
                self.n_objects.append(len(r.get("objects", [])))
                self.is_caption.append(cap)
        if not rows:
            raise ValueError("no training examples: check question_types against the data")
        self.max_len = max(len(x) for x, _ in rows)
        self.len = torch.tensor([len(x) for x, _ in rows])
        idx = np.full((len(rows), self.max_len), tok.eot_token, dtype=np.int64)          # (E, T) padded
        targets = np.full((len(rows), self.max_len), -1, dtype=np.int64)                 # -1: no loss
        for j, (x, y) in enumerate(rows):
            idx[j, :len(x)], targets[j, :len(y)] = x, y
        self.idx, self.targets = torch.from_numpy(idx), torch.from_numpy(targets)
        self.scene = torch.tensor(self.scene)
        self.n_objects = torch.tensor(self.n_objects)
        self.is_caption = torch.tensor(self.is_caption)
        # draw weights: captions make up caption_frac of the samples, questions the rest
        n_cap = int(self.is_caption.sum())
        w_cap = caption_frac / n_cap if n_cap else 0.0
        w_q = (1 - caption_frac if n_cap else 1.0) / max(1, len(rows) - n_cap)
        self.weights = torch.where(self.is_caption, w_cap, w_q)
        # per scene, for pack(): its examples (questions first, the caption last), how many are questions
        self.pad = tok.eot_token
        ends = torch.bincount(self.scene, minlength=len(records)).cumsum(0).tolist()  # scenes are contiguous
        self.examples_of = [torch.arange(a, b) for a, b in zip([0] + ends[:-1], ends)]
        self.n_questions = torch.tensor([int((~self.is_caption[ex]).sum()) for ex in self.examples_of])
        self.n_scene_objects = torch.tensor([len(r.get("objects", [])) for r in records])

    def sample(self, batch_size, generator, one_object=False, captions_only=False, multi_weight=1.0):
        """batch_size example indices, drawn with replacement (curriculum: one-object scenes first;
        multi_weight: questions about scenes of 2+ objects, where binding is learned, drawn more often)."""
        w = reweight(self.weights, self.n_objects, one_object, multi_weight)
        if captions_only:
            if not bool(self.is_caption.any()):
                raise ValueError("a captions-only stage needs captions: set caption_frac > 0 (shapes data)")
            w = w * self.is_caption
        return torch.multinomial(w, batch_size, replacement=True, generator=generator)

    def batch(self, ix):
        """ix (B,) -> idx (B, T), targets (B, T), scene (B,), T trimmed to the longest example."""
        T = int(self.len[ix].max())
        return self.idx[ix, :T], self.targets[ix, :T], self.scene[ix]

    def draw(self, batch_size, generator, one_object, multi_weight, pack, captions_only=False):
        """A training batch: idx, targets (B, T), scene (B,), segments (B, T) or None. pack: one row
        per scene with all its questions (below); otherwise one example per row."""
        if not pack:
            ix = self.sample(batch_size, generator, one_object, captions_only, multi_weight)
            return *self.batch(ix), None
        scene = self.sample_scenes(batch_size, generator, one_object, multi_weight)
        # all rows of a step carry their caption (~22 tokens), or none does: rows of a step end at about
        # the same length, so less padding than a caption in some rows (14% fewer tokens per step, image included)
        with_caption = (torch.rand(1, generator=generator) < self.caption_frac).expand(batch_size)
        idx, targets, segments = self.pack(scene, with_caption)
        return idx, targets, scene, segments

    # packing (train.py's `pack`): one row per scene, all its questions one after another, so the
    # image tokens, most of a row, are computed once for five answers instead of once for each

    def sample_scenes(self, batch_size, generator, one_object=False, multi_weight=1.0):
        """batch_size scene indices, drawn with replacement among scenes with questions (one_object,
        multi_weight: as sample())."""
        w = reweight((self.n_questions > 0).float(), self.n_scene_objects, one_object, multi_weight)
        return torch.multinomial(w, batch_size, replacement=True, generator=generator)

    def pack(self, scenes, with_caption):
        """scenes (B,), with_caption (B,) bool -> idx, targets, segments, each (B, T): every question
        of a scene (and its caption where with_caption) in one row, segment k the k-th of them;
        padding is one more segment, with no loss. GPT.forward keeps the segments apart."""
        rows = [self.examples_of[s][:None if cap else int(self.n_questions[s])]
                for s, cap in zip(scenes.tolist(), with_caption.tolist())]
        # no loop over questions: each token of the batch gets its row and column from its example's place
        ex = torch.cat(rows)                                                   # (E,) every example, row by row
        per_row = torch.tensor([len(r) for r in rows])                         # (B,) examples per row
        n = self.len[ex]                                                       # (E,) tokens per example
        row = torch.repeat_interleave(torch.arange(len(rows)), per_row)        # (E,) its row
        k = torch.arange(len(ex)) - torch.repeat_interleave(per_row.cumsum(0) - per_row, per_row)  # (E,) its segment
        row_len = torch.zeros(len(rows), dtype=torch.long).index_add_(0, row, n)  # (B,)
        start = n.cumsum(0) - n - torch.repeat_interleave(row_len.cumsum(0) - row_len, per_row)  # (E,) where it starts
        e = torch.repeat_interleave(torch.arange(len(ex)), n)                  # each token's example
        j = torch.arange(len(e)) - torch.repeat_interleave(n.cumsum(0) - n, n)  # its place in the example
        b, t = row[e], start[e] + j                                            # its row and column
        T = int(row_len.max())
        idx = torch.full((len(rows), T), self.pad, dtype=torch.long)           # (B, T)
        targets = torch.full((len(rows), T), -1, dtype=torch.long)
        segments = per_row[:, None].expand(-1, T).clone()                      # padding: one more segment
        idx[b, t], targets[b, t], segments[b, t] = self.idx[ex[e], j], self.targets[ex[e], j], k[e]
        return idx, targets, segments


def reweight(w, n_objects, one_object, multi_weight):
    """Draw weights w (one per example or scene) under the curriculum (one_object: only what shows
    one object, if anything drawable does) or, after it, multi_weight on what shows 2+ objects."""
    if one_object and bool(((n_objects == 1) & (w > 0)).any()):
        return w * (n_objects == 1)
    if multi_weight != 1.0:
        return w * torch.where(n_objects > 1, multi_weight, 1.0)
    return w


def stage0_targets(masks, records, n_side):
    """Per-patch labels for ViT pretraining, for the 5 views of each scene (low, then 4 crops).

    Each token takes the object covering most of its pixels (0 = background, else class + 1):
    'shape', 'colour', 'texture', 'cell' (the object's grid cell) and 'centre' (1 if the object's
    box centre is in the token). -1 (ignored by the loss) where a view cannot tell: texture is
    invisible in the low view; a crop does not know where it sits, so it has no cell or centre.
    Returns {name: (M, 5, n_side * n_side) long}.
    """
    from data.shapes.render import COLOURS, SHAPES, TEXTURES
    M, H, _ = masks.shape
    h = H // 2
    views = [masks] + [masks[:, r * h:(r + 1) * h, c * h:(c + 1) * h] for r in (0, 1) for c in (0, 1)]
    N = n_side * n_side
    out = {k: np.zeros((M, 5, N), dtype=np.int64) for k in ("shape", "colour", "texture", "cell", "centre")}
    out["texture"][:, 0] = -1
    out["cell"][:, 1:] = out["centre"][:, 1:] = -1
    for v, m in enumerate(views):
        p = m.shape[1] // n_side
        blocks = m.reshape(M, n_side, p, n_side, p).transpose(0, 1, 3, 2, 4).reshape(M, N, p * p)
        counts = np.stack([(blocks == k).sum(-1) for k in range(1, 10)], -1)   # (M, N, 9) pixels per object
        owner = np.where(counts.max(-1) > 0, counts.argmax(-1) + 1, 0)        # (M, N) object index + 1
        for i, r in enumerate(records):
            for k, o in enumerate(r["objects"]):
                on = owner[i] == k + 1
                out["shape"][i, v, on] = SHAPES.index(o["shape"]) + 1
                out["colour"][i, v, on] = list(COLOURS).index(o["colour"]) + 1
                if v == 0:
                    out["cell"][i, 0, on] = 3 * o["row"] + o["col"] + 1
                    x0, y0, x1, y1 = o["box"]
                    out["centre"][i, 0, int((y0 + y1) / 2 // p) * n_side + int((x0 + x1) / 2 // p)] = 1
                else:
                    out["texture"][i, v, on] = TEXTURES.index(o["texture"]) + 1
    return {k: torch.from_numpy(v) for k, v in out.items()}
