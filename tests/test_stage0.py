"""Tests for stage0.py: targets per view, the detail level, the invariance partner and term, and
the label-free stage 0 that your own data (no scene graph) gets."""
import numpy as np
import pytest
import torch

from data.shapes import render as R
from data.shapes.prepare import make_split
from fusion import make_views
from stage0 import PixelStage0, Stage0, check_targets, pixel_targets, recolour_lowpass, scene_task, silhouettes, view_targets
from vit import ViT, ViTConfig


@pytest.fixture(scope="module")
def scenes():
    return make_split("val", 8, seed=3, min_objects=1, max_objects=3)


def test_partner_has_new_colours_and_no_texture(scenes):
    images, masks, records = scenes
    out = recolour_lowpass(images, masks, records, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == np.uint8
    blocks = out.reshape(8, 32, 2, 32, 2, 3).astype(int)
    assert (blocks == blocks[:, :, :1, :, :1]).all()        # every 2x2 block is flat: texture gone
    assert (out[masks == 0] == images[masks == 0]).all()    # background untouched
    palette = {tuple(c) for c in R.COLOURS.values()}
    changed = 0
    for i, r in enumerate(records):
        for k, o in enumerate(r["objects"]):
            colours = {tuple(c) for c in out[i][masks[i] == k + 1]}
            assert colours <= palette | {tuple(R.COLOURS[o["colour"]])}  # a flat palette colour
            changed += tuple(R.COLOURS[o["colour"]]) not in colours
    assert changed > 0


def test_partner_never_shows_a_held_out_pair_unless_allowed():
    """recolour_held_out=False (train.py's vit_recolour_held_out): no partner object is recoloured into a
    held-out pair (a red circle: training must never show one); the default may, as detail_at_depth ran."""
    images, masks, records = make_split("train", 200, seed=0, min_objects=1, max_objects=2, question_types=["count"])
    by_rgb = {tuple(c): name for name, c in R.COLOURS.items()}
    for held_out in (True, False):
        out = recolour_lowpass(images, masks, records, np.random.default_rng(0), held_out)
        pairs = {(o["shape"], by_rgb[tuple(out[i][masks[i] == k + 1][0])])
                 for i, r in enumerate(records) for k, o in enumerate(r["objects"])}
        assert bool(pairs & set(R.HELD_OUT_PAIRS)) == held_out
        assert len(pairs) >= 20  # every other shape-colour pair still occurs


def test_silhouettes_keep_the_outline_and_nothing_else(scenes):
    images, masks, records = scenes
    out = silhouettes(images, masks)
    assert (out[masks == 0] == images[masks == 0]).all()      # background untouched
    assert (out[masks > 0] == 150).all()                      # every object the same flat grey
    assert len({tuple(c) for c in images[masks > 0]}) > 1     # (they were not before)


def test_silhouette_views_ask_shape_not_colour(scenes):
    """With every view a silhouette, the colour/texture heads get no target (their loss is 0 and
    they get no gradient); without silhouettes they do."""
    from data.batches import Split
    images, masks, records = scenes
    split = Split(images, records, masks)
    torch.manual_seed(0)
    vit = ViT(ViTConfig(n_layer=2, n_head=2, n_embd=16, image_size=32, patch_size=8))
    for share, expect_grad in ((1.0, False), (0.0, True)):
        net = Stage0(vit, ["shape", "cell", "colour", "texture"], main_level=-1, silhouettes=share)
        loss, _ = scene_task(net, split, split, np.arange(8), ["shape", "cell"], ["shape", "colour", "texture"],
                             crops=1.0, batch_size=16, ramp_steps=1, device="cpu", say=lambda m: None)
        net.zero_grad()
        loss(net, torch.Generator().manual_seed(0), 0).backward()
        got = net.heads["colour"].weight.grad
        assert (got is not None and got.abs().sum() > 0) == expect_grad
        assert net.heads["shape"].weight.grad.abs().sum() > 0


def test_invariance_share_partners_the_first_views_only(scenes):
    """invariance_share (train.py's vit_invariance_share): the first share of each batch gets a partner,
    the one it gets when every view has one (the same random stream), and the term compares those only."""
    from data.batches import Split
    images, masks, records = scenes
    split = Split(images, records, masks)
    torch.manual_seed(0)
    vit = ViT(ViTConfig(n_layer=2, n_head=2, n_embd=16, image_size=32, patch_size=8))
    seen = {}
    for share in (1.0, 0.25):
        net = Stage0(vit, ["shape", "cell"], main_level=-1, invariance=1.0, invariance_share=share)
        forward = net.forward

        def spy(x, y=None, partner=None, ramp=1.0, share=share, forward=forward):
            seen[share] = (x, partner)
            return forward(x, y, partner, ramp)
        net.forward = spy
        loss, _ = scene_task(net, split, split, np.arange(8), ["shape", "cell"], ["shape"],
                             crops=0.5, batch_size=16, ramp_steps=1, device="cpu", say=lambda m: None)
        assert torch.isfinite(loss(net, torch.Generator().manual_seed(0), 1))
    (x, every), (x4, first) = seen[1.0], seen[0.25]
    assert torch.equal(x, x4) and len(every) == 16 and len(first) == 4
    assert torch.equal(first, every[:4])
    y = {"shape": torch.randint(0, 5, (16, 16)), "cell": torch.randint(0, 10, (16, 16))}
    base = net.forward(x, y)[1]
    assert torch.allclose(net.forward(x, y, partner=x[:4])[1], base)          # the same views: no cost
    assert net.forward(x, y, partner=every[:4])[1] > base


def test_a_fixed_partner_gets_no_gradient():
    """partner_grad=False (train.py's vit_partner_grad): the same loss, but the gradient is the one of
    a partner computed apart, without a graph; with partner_grad=True the partner's pass adds its own."""
    torch.manual_seed(0)
    vit = ViT(ViTConfig(n_layer=2, n_head=2, n_embd=16, image_size=32, patch_size=8))
    x, partner = torch.rand(6, 3, 32, 32), torch.rand(3, 3, 32, 32)
    y = {"shape": torch.randint(0, 5, (6, 16))}
    grads, losses = {}, {}
    for grad in (True, False):
        torch.manual_seed(1)  # the same heads
        net = Stage0(vit, ["shape"], main_level=-1, invariance=1.0, partner_grad=grad)
        vit.zero_grad()
        losses[grad] = net(x, y, partner)[1]
        losses[grad].backward()
        grads[grad] = vit.patch_embed.weight.grad.clone()
    with torch.no_grad():
        target = vit(partner)[-1]                                           # the partner, apart
    net.zero_grad()
    main = vit(x)[-1]
    (net(x, y)[1] + ((main[:3] - target).pow(2) / main.detach().var(dim=(0, 1))).mean()).backward()
    assert torch.allclose(losses[True], losses[False])
    assert torch.allclose(grads[False], vit.patch_embed.weight.grad, atol=1e-6)
    assert not torch.allclose(grads[True], grads[False], atol=1e-6)


def test_targets_per_view(scenes):
    images, masks, records = scenes
    t = view_targets(masks, records, 8, ["shape", "cell", "centre"], ["shape", "colour"])
    assert set(t) == {"shape", "cell", "centre", "colour"}
    assert (t["colour"][:, 0] == -1).all() and (t["colour"][:, 1:] >= 0).all()   # colour on crops only
    assert (t["cell"][:, 1:] == -1).all() and (t["cell"][:, 0] >= 0).all()


def test_bad_targets_are_one_line_errors():
    with pytest.raises(ValueError, match="cell/centre"):
        check_targets(["shape"], ["cell"], None, 6, -2)
    with pytest.raises(ValueError, match="unknown stage-0 targets"):
        check_targets(["hue"], [], None, 6, -2)
    with pytest.raises(ValueError, match="vit_detail_level=5"):
        check_targets(["shape"], ["colour"], 5, 6, -2)
    check_targets(["shape"], ["colour"], 1, 6, -2)


def test_detail_heads_read_the_detail_level_and_invariance_is_a_loss_term():
    torch.manual_seed(0)
    vit = ViT(ViTConfig(16, 4, 4, 2, 16))
    s = Stage0(vit, ["shape", "colour", "texture"], main_level=-2, detail_level=1, invariance=1.0)
    assert s.level == {"shape": 2, "colour": 1, "texture": 1}
    assert not any(p.requires_grad for p in vit.blocks[3].parameters())  # above the main level
    x = torch.rand(3, 3, 16, 16)
    y = {k: torch.randint(-1, 4, (3, 16)) for k in s.heads}
    base = s(x, y)[1]
    assert torch.allclose(s(x, y, partner=x)[1], base)                   # same view: no invariance cost
    other = torch.rand(3, 3, 16, 16)
    assert s(x, y, partner=other)[1] > base
    assert torch.allclose(s(x, y, partner=other, ramp=0.0)[1], base)   # ramped from 0 in train.py
    # the colour head's gradient stops at block 1: blocks 2.. get none from it
    vit.zero_grad()
    out = s(x)[0]
    out["colour"].sum().backward()
    assert vit.blocks[2].mlp[0].weight.grad is None or vit.blocks[2].mlp[0].weight.grad.abs().sum() == 0
    assert vit.blocks[1].mlp[0].weight.grad.abs().sum() > 0


def test_adversary_learns_on_detached_tokens_and_the_vit_learns_to_confuse_it():
    torch.manual_seed(0)
    vit = ViT(ViTConfig(16, 4, 3, 2, 16))
    s = Stage0(vit, ["colour"], main_level=-1, adversary=1.0)
    assert set(s.adversaries) == {"colour"}
    x, y = torch.rand(2, 3, 16, 16), {"colour": torch.randint(1, 7, (2, 16))}
    levels = vit(x)
    # the ViT's side of the adversary: cross-entropy against a uniform answer over the 6 colours
    with torch.no_grad():
        logp = torch.log_softmax(s.adversaries["colour"](levels[-1])[..., 1:], -1)
        head_ce = torch.nn.functional.cross_entropy(s.heads["colour"](levels[-1]).flatten(0, 1), y["colour"].flatten())
        adv_ce = torch.nn.functional.cross_entropy(s.adversaries["colour"](levels[-1]).flatten(0, 1), y["colour"].flatten())
    assert torch.allclose(s(x, y)[1], head_ce + adv_ce - logp.mean(), atol=1e-5)
    # the adversary learns from its own cross-entropy only: the confusion term does not move it
    s.zero_grad()
    s(x, y)[1].backward()
    g = s.adversaries["colour"].weight.grad.clone()
    s.zero_grad()
    torch.nn.functional.cross_entropy(s.adversaries["colour"](vit(x)[-1].detach()).flatten(0, 1),
                                      y["colour"].flatten()).backward()
    assert torch.allclose(g, s.adversaries["colour"].weight.grad, atol=1e-6)


# ---- the label-free stage 0 ----

def test_pixel_target_is_the_full_resolution_block_under_the_token():
    images = torch.rand(2, 3, 16, 16)
    y = pixel_targets(images, 2)                 # low view 8x8, patch 2: 16 tokens, each 4x4 full-res pixels
    assert y.shape == (2, 16, 3 * 4 * 4)
    r, c = 2, 1
    assert torch.equal(y[1, 4 * r + c], images[1, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4].flatten())
    low = make_views(images)[0]                  # (2, 3, 8, 8): what the token sees is the mean of its target
    seen = low[1, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].mean((1, 2))
    assert torch.allclose(y[1, 4 * r + c].view(3, 16).mean(1), seen, atol=1e-6)


def tiny(mask_ratio):
    torch.manual_seed(0)
    return PixelStage0(ViT(ViTConfig(8, 2, 2, 2, 16, 0.0)), main_level=-1, mask_ratio=mask_ratio)


def test_loss_is_standardised_and_falls_on_a_fixed_batch():
    images = torch.rand(8, 3, 16, 16).round()    # black/white pixels: detail the low view averages away
    net = tiny(0.25)
    pred, loss0 = net(images, torch.Generator().manual_seed(0))
    assert pred.shape == (8, 16, 48)
    with torch.no_grad():                        # a head that says the mean everywhere scores 1.0
        net.heads["pixels"].weight.zero_()
        net.heads["pixels"].bias.fill_(pixel_targets(images, 2).mean().item())
    assert abs(net(images)[1].item() - 1.0) < 1e-5
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(100):
        loss = net(images)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 < loss0.item()


def test_blanked_tokens_come_from_the_generator():
    net, images = tiny(0.5), torch.rand(4, 3, 16, 16)
    a, b = (net(images, torch.Generator().manual_seed(1))[0] for _ in range(2))
    assert torch.equal(a, b)                     # the same draws: a resumed run sees the same masks
    assert not torch.equal(a, net(images)[0])    # ... and without a generator nothing is blanked
