"""
Stage 0: pretrain the ViT alone, before any text, so that a frozen ViT can feed the LLM.

Our ViT is not a pretrained CLIP, so the main job first teaches it to see: every patch token
predicts, through one linear head per target, what the scene graph says is under it.

    low view: 'shape' of the object under the token (or background), its grid 'cell', and
              whether its 'centre' is in the token: what is here, and where (CLIP-like meaning)
    crops:    'shape', 'colour', 'texture': the fine detail only full resolution shows

Two switches make the depth of each kind of knowledge a design choice (config/detail_at_depth.py):
- `detail_level`: the block the detail heads ('colour', 'texture') read. None = the main level,
  like every other head. A shallow block makes that block carry the detail *loudly*.
- `invariance`: weight of a term asking the main level to give the same tokens for the view and
  for the same view recoloured at random and 2x2 low-passed (texture gone). The main level then
  keeps meaning and loses detail: the premise of the paper's shortcuts, built by construction.
  `recolour_held_out=False` keeps that recolouring off the held-out pairs (no red circle in training).
  `invariance_share`: the share of each batch given a partner. The partner's pass through the ViT is
  what the term costs (a step with every view partnered costs about twice one without).
  `partner_grad=False` makes the partner a fixed target (no gradient through its pass, as in SimSiam's
  stop-gradient): only the view's tokens move towards it, and its backward pass is skipped (a step ~20% cheaper).
  The main level then keeps much of its colour, and compositional falls (docs/FINDINGS.md).
- `silhouettes`: share of views in which every object is one flat grey (no colour, texture or
  digit), with the shape and where targets only: shape then has to be read from the outline, not
  from the colour or texture it came with in training (the held-out pairs of the compositional split).
- `adversary`: weight of a confusion term (Tzeng et al., 2015): detail heads on the main level
  learn to read colour/texture there (on detached tokens), and the ViT learns to make their
  answer uniform, so that no linear read-out finds the detail. Invariance alone leaves it quiet
  but linearly readable. (A gradient reversal through the heads instead blew up in our one try:
  their loss rose into the hundreds.)

Your own data has no scene graph. PixelStage0 is then a label-free stage 0 on your images: every
low-view token predicts the full-resolution pixels of its area (the detail the low view averaged
away), with a share of the tokens blanked so that they must be guessed from their neighbours
(masked prediction, in the spirit of MAE).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from data.batches import stage0_targets, to_float
from fusion import make_views
from vit import patchify

N_CLASSES = {"shape": 5, "cell": 10, "centre": 2, "colour": 7, "texture": 5}  # class 0: background
DETAIL = ("colour", "texture")   # the heads `detail_level` moves


def check_targets(low_targets, crop_targets, detail_level, n_layer, main_level):
    """One-line ValueErrors for settings a user can get wrong."""
    if {"cell", "centre"} & set(crop_targets):
        raise ValueError("a crop does not know where it sits in the image: take cell/centre out of vit_crop_targets")
    bad = [t for t in low_targets + crop_targets if t not in N_CLASSES]
    if bad:
        raise ValueError(f"unknown stage-0 targets {bad}; valid: {', '.join(N_CLASSES)}")
    if detail_level is not None and not (type(detail_level) is int and 0 <= detail_level <= main_level % n_layer):
        raise ValueError(f"vit_detail_level={detail_level!r} must be None (the main level) or a ViT block "
                         f"0..{main_level % n_layer} (at most the main level)")


def view_targets(masks, records, n_side, low_targets, crop_targets):
    """Per-token labels {name: (M, 5, N)}; -1 where a head is not asked on that kind of view."""
    t = stage0_targets(masks, records, n_side)
    for k in t:
        if k not in low_targets:
            t[k][:, 0] = -1
        if k not in crop_targets:
            t[k][:, 1:] = -1
    return {k: v for k, v in t.items() if k in low_targets + crop_targets}


def recolour_lowpass(images, masks, records, rng, held_out=True):
    """The invariance partner of each image: every object in a random palette colour (held_out=False:
    never one that makes a held-out pair with its shape, so that no training view shows a red circle),
    then each 2x2 pixel block replaced by its mean (texture and digits gone). (B, H, W, 3) uint8 -> same."""
    from data.shapes.render import COLOURS, HELD_OUT_PAIRS, pick
    delta = np.zeros((len(images), 10, 3), dtype=np.int16)                      # per object index + 1
    for i, r in enumerate(records):
        for k, o in enumerate(r["objects"]):
            ok = [c for c in COLOURS if held_out or (o["shape"], c) not in HELD_OUT_PAIRS]
            delta[i, k + 1] = np.array(COLOURS[pick(ok, rng)]) - np.array(COLOURS[o["colour"]])
    # in torch: numpy's mean over the 2x2 blocks cost as much as a whole stage-0 step
    B = len(images)
    x = torch.from_numpy(np.ascontiguousarray(images)).short() + torch.from_numpy(delta)[
        torch.arange(B)[:, None, None], torch.from_numpy(np.ascontiguousarray(masks)).long()]  # (B, H, W, 3)
    x = F.avg_pool2d(x.permute(0, 3, 1, 2).float(), 2).round().clamp(0, 255)                # (B, 3, H/2, W/2)
    x = x.repeat_interleave(2, 2).repeat_interleave(2, 3)                                      # (B, 3, H, W)
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def silhouettes(images, masks):
    """Every object one flat grey: its outline and nothing else. (B, H, W, 3) uint8 -> same."""
    x = images.copy()
    x[masks > 0] = 150
    return x


def pick_views(images, view):
    """images (B, 3, 2S, 2S) floats, view (B,) in 0..4 (0 low, 1..4 crops) -> (B, 3, S, S)."""
    low, crops = make_views(images)
    return torch.cat([low[:, None], crops], dim=1)[torch.arange(len(view)), view]


class Stage0(nn.Module):
    """The ViT up to the main level, with one linear head per target on every token."""

    def __init__(self, vit, targets, main_level, detail_level=None, invariance=0.0, adversary=0.0, silhouettes=0.0,
                 recolour_held_out=True, invariance_share=1.0, partner_grad=True):
        super().__init__()
        self.vit = vit
        self.heads = nn.ModuleDict({k: nn.Linear(vit.config.n_embd, N_CLASSES[k]) for k in N_CLASSES
                                    if k in targets})
        self.main_level = main_level % vit.config.n_layer
        self.level = {k: detail_level if k in DETAIL and detail_level is not None else self.main_level
                      for k in self.heads}
        self.invariance, self.adversary, self.silhouettes = invariance, adversary, silhouettes
        self.recolour_held_out = recolour_held_out  # the invariance partner's colours (recolour_lowpass)
        self.invariance_share = invariance_share    # the first share of each batch gets a partner: its pass is the cost
        self.partner_grad = partner_grad            # False: the partner a fixed target, its backward skipped
        self.adversaries = nn.ModuleDict({k: nn.Linear(vit.config.n_embd, N_CLASSES[k]) for k in DETAIL
                                          if k in targets and adversary})
        for block in vit.blocks[self.main_level + 1:]:
            block.requires_grad_(False)  # above the main level: never read, never trained

    def forward(self, x, targets=None, partner=None, ramp=1.0):
        """x (B, 3, S, S) views; targets {name: (B, N)}; partner: the first P <= B of the views recoloured
        and low-passed (only with invariance); ramp scales the invariance and adversary terms.
        Returns ({name: (B, N, classes)}, loss or None)."""
        levels = self.vit(x, depth=self.main_level + 1)                     # each (B, N, Cv)
        logits = {k: head(levels[self.level[k]]) for k, head in self.heads.items()}
        if targets is None:
            return logits, None
        main = levels[self.main_level]                                      # (B, N, Cv)
        loss = 0
        for k, out in list(logits.items()) + [(k, head(main.detach())) for k, head in self.adversaries.items()]:
            y = targets[k].flatten()
            loss = loss + F.cross_entropy(out.flatten(0, 1).float(), y, ignore_index=-1,
                                          reduction="sum") / (y >= 0).sum().clamp(min=1)
        for k, head in self.adversaries.items():  # the ViT's side: the heads' answer as uniform as can be
            on = targets[k] > 0                                             # object tokens
            logp = F.log_softmax(F.linear(main[on], head.weight.detach(), head.bias.detach())[:, 1:].float(), -1)
            loss = loss - ramp * self.adversary * logp.mean()
        if self.invariance and partner is not None:
            with torch.set_grad_enabled(self.partner_grad and torch.is_grad_enabled()):
                h2 = self.vit(partner, depth=self.main_level + 1)[-1]       # (P, N, Cv), P <= B
            # per channel, divided by its variance: a quiet channel counts as much as a loud one (a
            # linear probe standardises its inputs), and shrinking the features does not help
            loss = loss + ramp * self.invariance * ((main[:len(h2)] - h2).pow(2) / main.detach().var(dim=(0, 1))).mean()
        return logits, loss


def pixel_targets(images, patch_size):
    """images (B, 3, 2S, 2S) -> (B, N, 3*2p*2p): the full-resolution pixels under each low-view
    token (patch p of the S-pixel low view covers 2p x 2p pixels of the image)."""
    return patchify(images, 2 * patch_size)


class PixelStage0(nn.Module):
    """The ViT up to the main level on the low view, one linear head: pixels of each token's area."""

    def __init__(self, vit, main_level, mask_ratio=0.25):
        super().__init__()
        self.vit, self.mask_ratio = vit, mask_ratio
        self.p = vit.config.patch_size
        self.heads = nn.ModuleDict({"pixels": nn.Linear(vit.config.n_embd, 3 * (2 * self.p) ** 2)})
        self.adversaries = nn.ModuleDict()  # no labels, nothing to hide
        self.main_level = main_level % vit.config.n_layer
        for block in vit.blocks[self.main_level + 1:]:
            block.requires_grad_(False)  # above the main level: never read, never trained

    def forward(self, images, generator=None):
        """images (B, 3, 2S, 2S) in [0, 1]; generator: draws the blanked tokens (None: none).
        Returns (predicted pixels (B, N, 3*2p*2p), loss): the squared error over the target's
        variance, so 1.0 is what one constant grey scores and 1 - loss is an R^2."""
        low, _ = make_views(images)                                         # (B, 3, S, S)
        if generator is not None and self.mask_ratio > 0:
            B, n = len(low), low.shape[-1] // self.p
            keep = torch.rand(B, 1, n, n, generator=generator) >= self.mask_ratio
            keep = keep.repeat_interleave(self.p, 2).repeat_interleave(self.p, 3)  # (B, 1, S, S)
            low = torch.where(keep.to(low.device), low, 0.5)               # mid grey: 0 once centred
        pred = self.heads["pixels"](self.vit(low, depth=self.main_level + 1)[-1])  # (B, N, 3*2p*2p)
        y = pixel_targets(images, self.p)
        return pred, (pred.float() - y).pow(2).mean() / y.var(correction=0).clamp(min=1e-6)


# -----------------------------------------------------------------------------
# what train.py's loop needs of stage 0: a loss on a sampled batch, and a score on held-out views

def scene_task(stage0, train, val, train_ix, low_targets, crop_targets, crops, batch_size, ramp_steps, device, say):
    """(loss(net, sampler, it), evaluate()) for Stage0 on scenes with a scene graph. train, val:
    data.batches.Split; train_ix: this rank's training scenes; crops: share of views that are crops;
    ramp_steps: the invariance and adversary terms reach full weight at half of it."""
    n_side = stage0.vit.config.image_size // stage0.vit.config.patch_size
    records = [train.records[i] for i in train_ix]
    targets = view_targets(train.masks[train_ix], records, n_side, low_targets, crop_targets)
    val_targets = view_targets(val.masks[:200], val.records[:200], n_side, low_targets, crop_targets)
    val_low, val_crops = make_views(to_float(val.images[:200]))
    val_views = torch.cat([val_low, val_crops.flatten(0, 1)])                          # (200*5, 3, S, S)

    def loss(net, sampler, it):
        ix = torch.randint(len(train_ix), (batch_size,), generator=sampler)
        view = torch.where(torch.rand(batch_size, generator=sampler) < crops,
                           torch.randint(1, 5, (batch_size,), generator=sampler), 0)   # 0 low, 1..4 crops
        images = train.images[train_ix[ix.numpy()]]
        y = {k: v[ix, view].to(device) for k, v in targets.items()}                    # each (B, N)
        if stage0.silhouettes:  # drawn only when asked: the default run's random stream stays as it was
            flat = torch.rand(batch_size, generator=sampler) < stage0.silhouettes      # (B,)
            images = images.copy()
            images[flat.numpy()] = silhouettes(images[flat.numpy()], train.masks[train_ix[ix[flat].numpy()]])
            for k in set(DETAIL) & set(y):
                y[k][flat.to(device)] = -1  # an outline has no colour or texture to name
        x = pick_views(to_float(images), view)                                         # (B, 3, S, S)
        partner = None
        if stage0.invariance:
            rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=sampler)))
            P = max(1, round(stage0.invariance_share * batch_size))                    # views given a partner
            partner = pick_views(to_float(recolour_lowpass(images[:P], train.masks[train_ix[ix[:P].numpy()]],
                                                           [records[i] for i in ix[:P].tolist()], rng,
                                                           stage0.recolour_held_out)), view[:P]).to(device)
        # the heads first learn what is where; then the main level is asked, ever more, to drop the
        # detail (at full weight from the start, 2 of 3 seeds stalled for half of stage 0)
        return net(x.to(device), y, partner, ramp=min(1.0, it / (0.5 * ramp_steps)))[1]

    @torch.no_grad()
    def evaluate():
        """Per-token accuracy of each head on the 5 views of 200 val scenes (where it applies)."""
        stage0.eval()
        out = stage0(val_views.to(device))[0]
        stage0.train()
        acc = {}
        for k in out:
            y = torch.cat([val_targets[k][:, 0], val_targets[k][:, 1:].flatten(0, 1)])   # (200*5, N)
            acc[k] = (out[k].argmax(-1).cpu() == y)[y >= 0].float().mean().item()
        say("val per-token accuracy: " + " ".join(f"{k} {a:.3f}" for k, a in acc.items()))
        return sum(acc.values()) / len(acc)

    return loss, evaluate


def pixel_task(stage0, train, val, train_ix, batch_size, device, say):
    """(loss(net, sampler, it), evaluate()) for PixelStage0 on images without a scene graph."""
    val_images = to_float(val.images[:200])

    def loss(net, sampler, it):
        ix = torch.randint(len(train_ix), (batch_size,), generator=sampler)
        return net(to_float(train.images[train_ix[ix.numpy()]]).to(device), sampler)[1]

    @torch.no_grad()
    def evaluate():
        """R^2 of the full-resolution pixels predicted from the low views of 200 val images."""
        stage0.eval()
        r2 = 1 - stage0(val_images.to(device))[1].item()
        stage0.train()
        say(f"val pixel R^2 {r2:.3f}")
        return r2

    return loss, evaluate
