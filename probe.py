"""
What does each level of the ViT know? Linear probes on object tokens, level by level.

    python probe.py --ckpt=out/vit.pt                    # a stage-0 ViT, or out/ckpt.pt (a full model)
    python probe.py --ckpt=out/vit.pt --json=probe.json --split=test --n_train=1000 --n_test=400
    python probe.py --ckpt=out/vit.pt --plot=probe.png   # also a picture: accuracy and var_share per level
    python probe.py --split=compositional --fit_split=compositional --n_train=600  # is a red circle's shape there at all?
    python probe.py --from_json=results/probe_main.json --plot=probe.png   # the picture of earlier results

Levels: the patch embedding ('embed': patch projection + position, what block 0 reads) and every
block up to the main level (the blocks above it are never read). An object token is a
patch at least half of whose pixels belong to one object; its label is an attribute of that
object in the scene graph. The low view is probed for colour, shape, texture and position (grid
cell 0..8): texture is averaged away in the low view by construction, so that probe is a check
that should sit at chance. The 4 crops, pooled, are probed for colour, shape and texture.

Two numbers per level, view and attribute:
- acc: held-out accuracy of a multinomial logistic regression fitted on the object tokens of
  n_train train scenes (features standardised with the train mean/std; full batch LBFGS from zero
  weights, a fixed number of steps: deterministic), scored on n_test scenes of --split. Chance =
  the share of the train-majority class among the held-out tokens.
- var_share: the share of the object tokens' variance the attribute explains, on the raw (not
  standardised) features: sum over channels of the between-class variance / total variance.
  A probe reads a direction however quiet it is; a fusion layer trained from scratch may not.
Data: data_dir's splits if there are any, else small splits generated in memory with the
checkpoint's data settings.
"""
import json as json_module  # `json` is the name of a setting here
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from checkpoint import check_result_path, exit_in_one_line, load_checkpoint, load_model, provenance, write_json
from configurator import check_ranges, configure_or_exit
from data.batches import to_float
from data.shapes.prepare import load_split, make_split
from data.shapes.render import COLOURS, POSITIONS, SHAPES, TEXTURES, unseen_pairs
from drawing import check_image_path, draw_levels
from fusion import make_views
from machine import use_threads
from vit import ViT, ViTConfig

ckpt = "out/vit.pt"       # a stage-0 vit.pt or a full ckpt.pt of train.py
data_dir = "data/shapes"  # the shapes splits; generated in memory if missing
split = "val"             # held-out scenes to score on: 'val' | 'test' | 'compositional' (attribute pairs training never shows)
fit_split = "train"       # scenes the probes are fitted on; = split: fitted on its first n_train scenes and scored on
                          # the n_test after them (a diagnosis, not a score: is the attribute in the features at all?)
n_train = 1000            # train scenes the probes are fitted on
n_test = 400              # held-out scenes they are scored on
steps = 50                # LBFGS iterations per probe (50 and 200 agree to .002 on the main job's ViT)
l2 = 1e-3                 # weight penalty of the probes
json = ""                 # also write the results to this file
plot = ""                 # also draw them to this PNG: accuracy and var_share per level, a line per view/attribute
from_json = ""            # no probing: draw --plot from this probe.py JSON (e.g. results/probe_main.json)
llm = False               # also probe the LLM's residual stream at the image positions, and the gradient
                          # reaching each path into it (a ckpt.pt only)
threads = None            # CPU threads; None: as many as are free at start (machine.py)
config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, float, str, bool, type(None))}

CLASSES = {"colour": list(COLOURS), "shape": SHAPES, "texture": TEXTURES, "position": POSITIONS}
PROBES = {"low": ["colour", "shape", "texture", "position"], "crops": ["colour", "shape", "texture"]}


def owners(masks, n_side):
    """masks (M, 2S, 2S) -> (M, 5, N): per view (low, then the 4 crops) the object (index + 1)
    covering at least half of each token's pixels; 0 for background and mixed tokens."""
    M, H, _ = masks.shape
    h = H // 2
    views = [masks] + [masks[:, r * h:(r + 1) * h, c * h:(c + 1) * h] for r in (0, 1) for c in (0, 1)]
    out = []
    for m in views:
        p = m.shape[1] // n_side  # a token's side in full-resolution pixels (2 patches wide in the low view)
        blocks = m.reshape(M, n_side, p, n_side, p).transpose(0, 1, 3, 2, 4).reshape(M, n_side ** 2, p * p)
        counts = np.stack([(blocks == k).sum(-1) for k in range(1, 10)], -1)      # (M, N, 9) pixels per object
        out.append(np.where(2 * counts.max(-1) >= p * p, counts.argmax(-1) + 1, 0))  # (M, N)
    return np.stack(out, 1)                                                          # (M, 5, N)


def labels(owner, records):
    """owner (M, 5, N) -> {attribute: (M, 5, N) class index}, -1 where no object owns the token; and
    'unseen': what training never shows about the object (1: its colour-shape pair, 2: its texture-shape pair, 3: both)."""
    M = len(records)
    of = {a: (lambda o, a=a, classes=classes: classes.index(o[a])) for a, classes in CLASSES.items()}
    of["unseen"] = lambda o: sum({"colour": 1, "texture": 2}[a] for a in unseen_pairs(o))
    out = {}
    for a, value in of.items():
        table = np.full((M, 10), -1)                      # column k + 1: the label of object k
        for i, r in enumerate(records):
            for k, o in enumerate(r["objects"]):
                table[i, k + 1] = value(o)
        out[a] = np.take_along_axis(table, owner.reshape(M, -1), 1).reshape(owner.shape)
    return out


@torch.no_grad()
def object_features(vit, images, keep, depth, batch=100):
    """images (M, 2S, 2S, 3) uint8, keep (M, 5, N) bool -> {level: (T, C)}, the kept tokens in
    (scene, view, token) order. Levels: 'embed' and blocks '0'..str(depth - 1)."""
    vit.eval()
    embed = []  # the embedding is what vit.drop returns: a hook reads it without touching vit.py
    hook = vit.drop.register_forward_hook(lambda module, inputs, out: embed.append(out))
    feats = {}
    for i in range(0, len(images), batch):
        low, crops = make_views(to_float(images[i:i + batch]))                  # (B,3,S,S), (B,4,3,S,S)
        views = torch.cat([low[:, None], crops], 1).flatten(0, 1)               # (B*5, 3, S, S)
        k = torch.from_numpy(keep[i:i + batch]).flatten(0, 1)                   # (B*5, N)
        has = k.any(1)                                                          # views without objects need not run
        levels = vit(views[has], depth=depth)                                   # depth x (V, N, C)
        hs = [embed.pop()] + levels                                             # the hook ran first
        k = k[has].flatten()                                                    # (V*N,)
        for name, h in zip(["embed"] + [str(b) for b in range(depth)], hs):
            feats.setdefault(name, []).append(h.reshape(-1, h.size(-1))[k])     # (t, C)
    hook.remove()
    return {name: torch.cat(f) for name, f in feats.items()}


def fit_probe(x, y, x_test, y_test, n_classes, steps=50, l2=1e-3):
    """Multinomial logistic regression on x (T, C) -> y (T,); returns its accuracy on the test tokens."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, x_test = (x - mean) / std, (x_test - mean) / std   # one scale for every channel: l2 treats them alike
    W = torch.zeros(x.size(1), n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ W + b, y) + l2 * W.square().sum()
        loss.backward()
        return loss
    with torch.enable_grad():
        opt.step(closure)
    return ((x_test @ W + b).argmax(1) == y_test).float().mean().item()


def var_share(x, y):
    """Share of the variance of x (T, C) that the classes y (T,) explain, in [0, 1]:
    sum over channels of the between-class variance / sum over channels of the total variance."""
    x = x.double()
    counts = torch.bincount(y).double()                                  # (K,)
    means = torch.zeros(len(counts), x.size(1), dtype=x.dtype).index_add_(0, y, x)
    means = means[counts > 0] / counts[counts > 0, None]                 # (K', C) class means
    mu = x.mean(0)
    between = (counts[counts > 0, None] * (means - mu).square()).sum() / len(x)
    return (between / (x - mu).square().sum(1).mean()).item()


def object_labels(masks, records, n_side):
    """The object tokens of some scenes: keep (M, 5, N) bool, {attribute: (T,)} and view (T,): 0 low, 1..4 crops."""
    owner = owners(masks, n_side)                                           # (M, 5, N)
    keep = owner > 0
    y = {a: torch.from_numpy(l[keep]) for a, l in labels(owner, records).items()}
    return keep, y, torch.from_numpy(np.nonzero(keep)[1])


def in_view(v, view):
    return v == 0 if view == "low" else v > 0  # v (T,): each token's view -> (T,) bool, the low view's or the crops'


def chance_of(y, v, yt, vt):
    """{'view/attribute': the share of the train-majority class among the held-out object tokens of
    that view}, from object_labels of the train (y, v) and held-out (yt, vt) scenes."""
    majority = lambda a, view: y[a][in_view(v, view)].bincount().argmax()
    return {f"{view}/{a}": (yt[a][in_view(vt, view)] == majority(a, view)).float().mean().item()
            for view, attributes in PROBES.items() for a in attributes}


def object_tokens(vit, train, test, depth):
    """train, test: (images, masks, records) of the shapes data -> for each, the labels, views and
    features ({level: (T, C)}) of its object tokens: what the probes are fitted on and scored on."""
    n_side = vit.config.image_size // vit.config.patch_size
    out = []
    for images, masks, records in (train, test):
        keep, y, v = object_labels(masks, records, n_side)
        out.append((y, v, object_features(vit, images, keep, depth)))
    return out


def probe_levels(tokens, steps=50, l2=1e-3):
    """tokens: object_tokens(...). Fits a probe per level, view and attribute. Returns
    ({level: {'view/attribute': {'acc', 'var_share'}}}, {'view/attribute': chance})."""
    (y, v, f), (yt, vt, ft) = tokens
    results, chance = {level: {} for level in f}, chance_of(y, v, yt, vt)
    for view, attributes in PROBES.items():
        m, mt = in_view(v, view), in_view(vt, view)
        for a in attributes:
            key = f"{view}/{a}"
            for level in f:
                results[level][key] = {
                    "acc": fit_probe(f[level][m], y[a][m], ft[level][mt], yt[a][mt], len(CLASSES[a]), steps, l2),
                    "var_share": var_share(f[level][m], y[a][m])}
    return results, chance


def by_unseen_pair(tokens, level, steps=50, l2=1e-3):
    """Compositional scenes: the train-fitted shape probe at one level, per view, on the object tokens
    whose colour-shape pair training never shows, whose texture-shape pair only it never shows, and
    the rest ({view: {kind: acc}}). A reader that learned colour or texture as evidence about shape fails
    where it can see that attribute: the low view blends texture away (the README's picture)."""
    (y, v, f), (yt, vt, ft) = tokens
    f, ft, new = f[str(level)], ft[str(level)], yt["unseen"]
    out = {}
    for view in PROBES:
        m, mt = in_view(v, view), in_view(vt, view)
        for name, sel in (("colour pair new", new % 2 == 1), ("only texture pair new", new == 2), ("neither", new == 0)):
            out.setdefault(view, {})[name] = fit_probe(f[m], y["shape"][m], ft[mt & sel], yt["shape"][mt & sel],
                                                       len(SHAPES), steps, l2) if (mt & sel).any() else None  # none here
    return out


def load_vit(path):
    """The ViT of a train.py checkpoint (vit.pt or ckpt.pt), its main level and the training config."""
    ck = load_checkpoint(path)
    try:
        vit = ViT(ViTConfig(**ck["model_config"]["vit"]))
        vit.load_state_dict({k[4:]: w for k, w in ck["model"].items() if k.startswith("vit.")})
        main = ck["model_config"]["main_level"] % vit.config.n_layer
    except (KeyError, TypeError, RuntimeError, AttributeError, IndexError) as e:
        raise ValueError(f"{path} does not hold a SparseCut ViT ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120]}): give a train.py vit.pt or ckpt.pt") from None
    return vit, main, ck.get("config", {})


def probe_data(c, cfg, S):
    """(train, test, where from): the first c['n_train'] train scenes and c['n_test'] of c['split'],
    each (images, masks, records), from c['data_dir'] if it holds the shapes data, else generated
    in memory with the data settings cfg a ViT reading S x S views was trained with."""
    fit = c.get("fit_split", "train")
    if fit not in ("train", c["split"]):
        raise ValueError(f"fit_split={fit!r}: fit on 'train', or on the scored split itself (={c['split']!r})")
    own = fit == c["split"]  # fitted and scored on one split: its first n_train scenes, then the n_test after
    try:  # a split both fitted and scored on is read (or made) once
        data = [load_split(c["data_dir"], fit)]
        data.append(data[0] if own else load_split(c["data_dir"], c["split"]))
        source = c["data_dir"]
    except FileNotFoundError:  # no data on disk: a small sample of the scenes this ViT was trained on
        kw = {k: cfg[k] for k in ("min_objects", "max_objects") if k in cfg}
        make = lambda s, n: make_split(s, n, cfg.get("data_seed", 0), image_size=2 * S, **kw)
        data = [make(fit, c["n_train"] + own * c["n_test"])]
        data.append(data[0] if own else make(c["split"], c["n_test"]))
        source = "generated in memory"
    if data[0][0].shape[1] != 2 * S:
        raise ValueError(f"{c['data_dir']} holds {data[0][0].shape[1]}px images but this ViT reads "
                         f"{2 * S}px ones: give --data_dir of data made with image_size={2 * S}")
    if own and len(data[0][0]) < c["n_train"] + c["n_test"]:
        raise ValueError(f"the {fit} split has {len(data[0][0])} scenes: n_train + n_test must fit in it")
    first = own * c["n_train"]
    train = tuple(a[:c["n_train"]] for a in data[0])
    test = tuple(a[first:first + c["n_test"]] for a in data[1])
    return train, test, source


def plot_json(c):
    """--from_json: draw --plot from a probe.py JSON. One written before probe.py kept the chance
    levels has them recomputed from the labels of the scenes it names (no ViT needed)."""
    try:
        with open(c["from_json"]) as f:
            out = json_module.load(f)
        results, main_level, run, cfg = out["levels"], out["main_level"], out["run"]["config"], out["trained_with"]
        chance = out.get("chance")
        if chance is None:  # the scenes it was probed on, found as main() finds them
            S = cfg["image_size"] // 2
            scenes = {"fit_split": run.get("fit_split", "train"), **{k: run[k] for k in ("data_dir", "split", "n_train", "n_test")}}
            train, test, source = probe_data(scenes, cfg, S)
            (_, y, v), (_, yt, vt) = (object_labels(m, r, S // cfg["patch_size"]) for _, m, r in (train, test))
            chance = chance_of(y, v, yt, vt)
            print(f"chance: not in {c['from_json']}; recomputed from the labels of its scenes ({source})")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        sys.exit(f"probe.py: from_json={c['from_json']!r} is not a probe.py JSON that can be drawn "
                 f"({type(e).__name__}: {e})")
    draw_levels(results, chance, main_level, c["plot"], f"{run['ckpt']}, {run['split']} scenes")
    print(f"wrote {c['plot']}")


def main(argv):
    configure_or_exit(config, argv, "probe.py")
    c = config
    t0 = time.time()
    if c["split"] not in ("val", "test", "compositional"):
        sys.exit(f"probe.py: split={c['split']!r} is not held out: use 'val', 'test' or 'compositional'")
    check_ranges(c, "probe.py", at_least_1="n_train n_test steps", at_least_0="l2")
    for key, check in (("json", check_result_path), ("plot", check_image_path)):  # before the work, not after it
        if c[key]:
            try:
                check(c[key])
            except ValueError as e:
                sys.exit(f"probe.py: {key}={c[key]!r}: {e}")
    if c["from_json"]:
        if not c["plot"]:
            sys.exit("probe.py: from_json draws a picture and probes nothing: give --plot=probe.png too")
        return plot_json(c)
    use_threads(c["threads"], "probe.py")
    try:
        vit, main_level, cfg = load_vit(c["ckpt"])
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"probe.py: {e}")
    try:
        train, test, source = probe_data(c, cfg, vit.config.image_size)
    except ValueError as e:
        sys.exit(f"probe.py: {e}")
    depth = main_level + 1  # the blocks above the main level are never read, and stage 0 never trains them
    tokens = object_tokens(vit, train, test, depth)
    results, chance = probe_levels(tokens, c["steps"], c["l2"])

    print(f"{c['ckpt']}: ViT {vit.config.n_layer} blocks, width {vit.config.n_embd}, main level {main_level}; "
          f"fitted on {len(train[0])} {c['fit_split']} / scored on {len(test[0])} {c['split']} scenes ({source})")
    keys = list(chance)
    row = lambda name, vals: print(f"{name:<10}" + "".join(f"{v:>{len(k) + 2}.3f}" for k, v in zip(keys, vals)))
    tag = lambda level: level + (" main" if level == str(main_level) else "")
    for title, field in (("held-out accuracy of a linear probe on object tokens", "acc"),
                         ("var_share: share of the object tokens' variance the attribute explains", "var_share")):
        print(f"\n{title}\n{'level':<10}" + "".join(f"{k:>{len(k) + 2}}" for k in keys))
        if field == "acc":
            row("chance", chance.values())
        for level, r in results.items():
            row(tag(level), [r[k][field] for k in keys])
    out = {"levels": results, "chance": chance}
    if c["split"] == "compositional" and c["fit_split"] == "train":
        out["unseen_pairs"] = by_unseen_pair(tokens, main_level, c["steps"], c["l2"])
        print("\nshape at the main level, by what is new about the object (train-fitted probe): " + "; ".join(
            f"{view}: " + ", ".join(f"{k} {'-' if a is None else f'{a:.3f}'}" for k, a in r.items())
            for view, r in out["unseen_pairs"].items()))
    if c["llm"]:
        from probe_llm import probe_llm_paths  # what reaches the LLM: its own file
        try:
            model = load_model(c["ckpt"], data_keys=())[0]
        except ValueError as e:
            sys.exit(f"probe.py: llm=True needs a full model (a train.py ckpt.pt): {e}")
        out.update(probe_llm_paths(model, train, test, cfg, c))
    if c["plot"]:
        draw_levels(results, chance, main_level, c["plot"], f"{c['ckpt']}, {c['split']} scenes")
        print(f"\nwrote {c['plot']}")
    if c["json"]:
        out.update(main_level=main_level, trained_with=cfg, run=provenance("probe.py", c))
        write_json(c["json"], out)
        print(f"\nwrote {c['json']}")
    print(f"\n{time.time() - t0:.1f}s")


if __name__ == "__main__":
    exit_in_one_line("probe.py")  # Ctrl-C, a kill, a full disk: one line, not a traceback
    main(sys.argv[1:])
