"""Tests for sparsecut.py: shortcut patterns, config checks, wiring, cache, describe, FLOPs."""
import pytest
import torch

from fusion import make_views
from sparsecut import SparseCut, SparseCutConfig, shortcut_pattern

VOCAB, T = 50, 6


def tiny_config(**kw):
    """ViT: 6 blocks on 8x8 views (N = 4 tokens); GPT: 4 layers. Images are 16x16."""
    cfg = dict(vit=dict(image_size=8, patch_size=4, n_layer=6, n_head=4, n_embd=32),
               llm=dict(block_size=64, vocab_size=VOCAB, n_layer=4, n_head=4, n_embd=32),
               fusion="concat", shortcut="sparse", density=2, order="u")
    cfg.update(kw)
    return SparseCutConfig(**cfg)


def tiny_model(**kw):
    return SparseCut(tiny_config(**kw)).eval()


def lively(model, scale=10.0):
    """Scale up every weight matrix. At a fresh init the ViT levels are nearly equal (so a
    shortcut barely moves the LayerNormed stream) and greedy decoding repeats one token, which
    would hide cache or shortcut bugs in the generated ids."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(scale)
    return model


def batch(b=2):
    return torch.rand(b, 3, 16, 16), torch.randint(VOCAB, (b, T))


# ---- shortcut_pattern ----

def test_paper_example_parallel():
    pairs = shortcut_pattern("sparse", 8, "parallel", 24, 40)
    levels, layers = [b for b, _ in pairs], [l for _, l in pairs]
    assert layers == list(range(4, 40, 5))  # 4, 9, ..., 39: every 5th of 40
    assert len(set(levels)) == 8
    assert all(b < 22 for b in levels)      # below the main level -2 = block 22
    assert levels == sorted(levels)          # parallel: shallow ViT -> low LLM layer
    assert levels[-1] == 21
    gaps = [b - a for a, b in zip([-1] + levels, levels)]
    assert max(gaps) - min(gaps) <= 1        # uniform spread over 0..21


def test_u_reverses_the_vit_order():
    par = shortcut_pattern("sparse", 8, "parallel", 24, 40)
    u = shortcut_pattern("sparse", 8, "u", 24, 40)
    assert [l for _, l in u] == [l for _, l in par]
    assert [b for b, _ in u] == [b for b, _ in par][::-1]
    assert u[0] == (21, 4)                   # deepest level feeds the lowest layer


@pytest.mark.parametrize("order", ["u", "parallel", "random"])
def test_layers_for_each_kind(order):
    d, n_vit, n_llm = 3, 12, 10
    levels = sorted(b for b, _ in shortcut_pattern("sparse", d, "parallel", n_vit, n_llm))
    expected_layers = {"dense_bottom": [0, 1, 2], "dense_top": [7, 8, 9],
                       "sparse": [l for _, l in shortcut_pattern("sparse", d, "parallel", n_vit, n_llm)]}
    for kind, layers in expected_layers.items():
        pairs = shortcut_pattern(kind, d, order, n_vit, n_llm)
        assert [l for _, l in pairs] == layers, kind
        assert sorted(b for b, _ in pairs) == levels, kind  # same ViT levels whatever the kind
    assert shortcut_pattern("sparse", d, order, n_vit, n_llm)[-1][1] == n_llm - 1
    assert shortcut_pattern("none", d, order, n_vit, n_llm) == []


def test_random_is_a_fixed_permutation_of_the_same_levels():
    a = shortcut_pattern("sparse", 8, "random", 24, 40)
    assert a == shortcut_pattern("sparse", 8, "random", 24, 40)
    par = shortcut_pattern("sparse", 8, "parallel", 24, 40)
    assert sorted(b for b, _ in a) == [b for b, _ in par]
    assert [l for _, l in a] == [l for _, l in par]


def test_main_level_moves_the_levels():
    pairs = shortcut_pattern("sparse", 2, "parallel", 6, 4, main_level=3)
    assert all(b < 3 for b, _ in pairs) and pairs[-1][0] == 2


def test_bad_pattern_arguments_name_the_valid_values():
    with pytest.raises(ValueError, match="dense_bottom"):
        shortcut_pattern("dense", 2, "u", 24, 40)
    with pytest.raises(ValueError, match="parallel"):
        shortcut_pattern("sparse", 2, "linear", 24, 40)
    for density in (0, 23):  # 22 ViT blocks below the main level
        with pytest.raises(ValueError, match="22"):
            shortcut_pattern("sparse", density, "u", 24, 40)
    with pytest.raises(ValueError, match="4 LLM layers"):
        shortcut_pattern("sparse", 5, "u", 24, 4)


# ---- SparseCutConfig ----

def test_config_validation():
    with pytest.raises(ValueError, match="cross_attention"):
        tiny_config(fusion="perceiver")
    for main_level in (6, -7):
        with pytest.raises(ValueError, match="main_level"):
            tiny_config(main_level=main_level)
    for pair in [(6, 0), (0, 4), (-1, 0)]:
        with pytest.raises(ValueError, match="out of range"):
            tiny_config(pairs=[pair])
    with pytest.raises(ValueError, match="sparse"):
        tiny_config(shortcut="everywhere")
    with pytest.raises(ValueError, match="density"):
        tiny_config(density=5)


def test_pairs_override_the_pattern():
    torch.manual_seed(0)
    model = tiny_model(pairs=[[1, 3], [2, 0]], shortcut="sparse", density=2)
    assert model.shortcuts == [(1, 3), (2, 0)]
    assert model.levels == [1, 2, 4]
    _, inject = model.fuse(model.encode(batch()[0]))
    assert sorted(inject) == [0, 3]


# ---- the model ----

@pytest.mark.parametrize("shortcut", ["none", "sparse", "dense_bottom", "dense_top"])
@pytest.mark.parametrize("fusion", ["mlp", "cross_attention", "concat"])
def test_context_is_n_plus_t(fusion, shortcut):
    torch.manual_seed(0)
    model = tiny_model(fusion=fusion, shortcut=shortcut)
    images, idx = batch()
    lengths = []
    for block in model.llm.transformer.h:
        block.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
    with torch.no_grad():
        logits, _ = model(images, idx)
    assert logits.shape == (2, T, VOCAB)
    assert lengths == [model.n_image_tokens + T] * 4 and model.n_image_tokens == 4


@pytest.mark.parametrize("fusion", ["mlp", "cross_attention", "concat"])
def test_kv_cache_equals_recompute_with_shortcuts(fusion):
    torch.manual_seed(0)
    model = lively(tiny_model(fusion=fusion, shortcut="sparse", density=3, order="u"))
    assert len(model.shortcuts) == 3
    images, idx = batch()
    a = model.generate(images, idx, 10, temperature=0, use_cache=True)
    b = model.generate(images, idx, 10, temperature=0, use_cache=False)
    assert a.shape == (2, T + 10) and torch.equal(a, b)
    plain = tiny_model(fusion=fusion, pairs=[])
    plain.load_state_dict(model.state_dict())
    assert not torch.equal(a, plain.generate(images, idx, 10, temperature=0))  # the shortcuts matter
    with torch.no_grad():
        full, _ = model(images, idx)
        prefix, inject = model.fuse(model.encode(images))
        cache = model.llm.new_cache()
        parts = [model.llm(idx[:, :3], prefix=prefix, inject=inject, cache=cache)[0]]
        for t in range(3, T):
            parts.append(model.llm(idx[:, t:t + 1], cache=cache)[0])
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fusion,views", [("mlp", 1), ("cross_attention", 5), ("concat", 5)])
def test_encode_views(fusion, views):
    torch.manual_seed(0)
    model = tiny_model(fusion=fusion)
    images, _ = batch()
    calls = []
    model.vit.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        feats = model.encode(images)
    assert calls == [2 * views]  # one batched ViT call over B * V views
    assert sorted(feats) == model.levels
    for f in feats.values():
        assert f.shape == (2, views, 4, 32)  # (B, V, N, Cv)
    # view 0 is the low view, views 1..4 the TL, TR, BL, BR crops, in that order
    low, crops = make_views(images)
    ref = [low] + [crops[:, k] for k in range(4)]
    with torch.no_grad():
        for v in range(views):
            levels = model.vit(ref[v])
            for b, f in feats.items():
                torch.testing.assert_close(f[:, v], levels[b], atol=1e-5, rtol=1e-4)


def test_forward_with_feats_equals_forward_with_images():
    torch.manual_seed(0)
    model = tiny_model()
    images, idx = batch()
    with torch.no_grad():
        a, la = model(images, idx, targets=idx)
        b, lb = model(None, idx, targets=idx, feats=model.encode(images))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(la, lb)


def test_fuse_adds_each_level_before_its_layer():
    torch.manual_seed(0)
    model = tiny_model(fusion="concat", pairs=[(0, 1), (2, 3)])
    images, _ = batch()
    with torch.no_grad():
        feats = model.encode(images)
        prefix, inject = model.fuse(feats)
        torch.testing.assert_close(prefix, model.fusion(feats[4][:, 0], feats[4][:, 1:]))
        assert sorted(inject) == [1, 3]
        torch.testing.assert_close(inject[1], model.fusion(feats[0][:, 0], feats[0][:, 1:]))
        torch.testing.assert_close(inject[3], model.fusion(feats[2][:, 0], feats[2][:, 1:]))


def test_shortcuts_change_the_logits():
    torch.manual_seed(0)
    model = tiny_model(fusion="concat", shortcut="sparse", density=2)
    plain = tiny_model(fusion="concat", pairs=[])
    plain.load_state_dict(model.state_dict())
    images, idx = batch()
    with torch.no_grad():
        feats = model.encode(images)
        a, _ = model(None, idx, feats=feats)
        b, _ = plain(None, idx, feats=feats)
        assert not torch.allclose(a, b)
        # zeroing the features of one shortcut level changes the answer; the baseline ignores them
        b0 = model.shortcuts[0][0]
        assert b0 != model.main_level
        zeroed = dict(feats)
        zeroed[b0] = torch.zeros_like(feats[b0])
        assert not torch.allclose(a, model(None, idx, feats=zeroed)[0])
        torch.testing.assert_close(b, plain(None, idx, feats={4: feats[4]})[0])


def test_a_removed_path_is_the_model_wired_without_it():
    """fuse(remove=...), for attribution: 'shortcuts' gives exactly the logits (and answers) of the
    model wired with none, from the same weights; 'shortcut:B' those of the model without block B's
    shortcut; 'crops' leaves nothing of the crop features. Shortcuts act at prefill only, so the
    cached decoding is the other model's too."""
    torch.manual_seed(0)
    model = lively(tiny_model(fusion="concat", pairs=[(0, 1), (2, 3)]), 3.0)
    none, only_2 = tiny_model(fusion="concat", shortcut="none"), tiny_model(fusion="concat", pairs=[(2, 3)])
    none.load_state_dict(model.state_dict())
    only_2.load_state_dict(model.state_dict())
    images, idx = batch()
    with torch.no_grad():
        full = model(images, idx)[0]
        assert torch.equal(model(images, idx, remove={"shortcuts"})[0], none(images, idx)[0])
        assert torch.equal(model(images, idx, remove={"shortcut:0"})[0], only_2(images, idx)[0])
        assert not torch.equal(model(images, idx, remove={"shortcut:0"})[0], full)
        assert torch.equal(model.generate(images, idx, 5, temperature=0.0, remove={"shortcuts"}),
                           none.generate(images, idx, 5, temperature=0.0))
        feats = model.encode(images)
        other = {b: torch.cat([f[:, :1], torch.randn_like(f[:, 1:])], 1) for b, f in feats.items()}  # other crops
        assert not torch.allclose(model(None, idx, feats=other)[0], full)
        assert torch.equal(model(None, idx, feats=other, remove={"crops"})[0],
                           model(None, idx, feats=feats, remove={"crops"})[0])
    assert model.paths() == ["shortcut:0", "shortcut:2", "shortcuts", "crops"]
    assert tiny_model(fusion="mlp", shortcut="none").paths() == []  # the baseline: low view, no shortcut
    assert tiny_model(fusion="mlp", shortcut="deepstack").paths() == ["shortcut:4", "shortcuts", "crops"]


def test_describe():
    torch.manual_seed(0)
    model = tiny_model(shortcut="sparse", density=2, order="u")
    text = model.describe()
    assert "block 4 (main)" in text
    lines = text.splitlines()
    for b, layer in model.shortcuts:
        assert any(f"block {b} " in line and f"before layer {layer}" in line for line in lines), (b, layer)
    assert "U-shaped" in text
    vit_m = sum(p.numel() for p in model.vit.parameters()) / 1e6
    assert lines[-1].startswith("parameters: vit ") and f"vit {vit_m:.2f}M" in lines[-1]
    above = [f"block {b} " for b in range(max(model.levels) + 1, model.config.vit.n_layer)]
    assert all(any(line.startswith("  " + a) and "never run" in line for line in lines) for a in above)
    assert sum("never run" in line for line in lines) == len(above)
    parallel = tiny_model(shortcut="sparse", density=2, order="parallel").describe()
    assert "U-shaped" not in parallel
    assert "block 3 (main)" in tiny_model(main_level=3).describe()
    # explicit pairs: a block may feed several layers, the main block may feed one too
    pairs = [(1, 0), (1, 2), (4, 3)]
    lines = tiny_model(pairs=pairs).describe().splitlines()
    for b, layer in pairs:
        assert any(f"block {b} " in line and f"before layer {layer}" in line for line in lines), (b, layer)


def test_estimate_flops():
    torch.manual_seed(0)
    base = tiny_model(fusion="mlp", shortcut="none")
    cut = tiny_model(fusion="concat", shortcut="sparse", density=2)
    fb, fc = base.estimate_flops(text_len=T), cut.estimate_flops(text_len=T)
    for f in (fb, fc):
        assert set(f) == {"vit", "fusion", "llm", "total"}
        assert all(v > 0 for v in f.values())
        assert f["total"] == f["vit"] + f["fusion"] + f["llm"]
    assert fb["llm"] == fc["llm"]                      # SparseCut does not lengthen the LLM context
    assert cut.estimate_flops(text_len=2 * T)["llm"] > fc["llm"]
    assert fc["fusion"] > fb["fusion"]                 # 3 fused levels with 5C inputs vs 1 with C
    # the same taps: 5 views cost 5x the ViT compute of the low view alone
    mlp_cut = tiny_model(fusion="mlp", shortcut="sparse", density=2)
    assert fc["vit"] == 5 * mlp_cut.estimate_flops(text_len=T)["vit"]
    # only blocks up to the deepest tap run
    assert tiny_model(fusion="mlp", shortcut="none", main_level=2).estimate_flops(T)["vit"] < fb["vit"]


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = tiny_model(fusion="concat", shortcut="sparse", density=2).train()
    images, idx = batch()
    targets = torch.randint(VOCAB, (2, T))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        _, loss = model(images, idx, targets=targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


def test_star_import():
    namespace = {}
    exec("from sparsecut import *", namespace)
    for name in ("SparseCut", "SparseCutConfig", "shortcut_pattern"):
        assert name in namespace


# ---- the peers: DeepStack-style and naive multi-resolution; learned gates ----

def context_lengths(model, idx, images):
    lengths = []
    hooks = [b.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
             for b in model.llm.transformer.h]
    with torch.no_grad():
        logits, _ = model(images, idx)
    for h in hooks:
        h.remove()
    assert logits.shape == (2, T, VOCAB)
    return lengths


def test_deepstack_adds_the_4_crop_groups_to_layers_0_to_3_at_n_tokens():
    torch.manual_seed(0)
    model = tiny_model(fusion="mlp", shortcut="deepstack")
    images, idx = batch()
    assert model.shortcuts == [(4, 0), (4, 1), (4, 2), (4, 3)] and model.n_views == 5
    assert context_lengths(model, idx, images) == [4 + T] * 4
    with torch.no_grad():
        feats = model.encode(images)
        prefix, inject = model.fuse(feats)
    torch.testing.assert_close(prefix, model.fusion(feats[4][:, 0]))  # the low view, as the baseline
    # group k holds, for every low-res token, the crop token at offset k of the 2x2 block under it
    high = feats[4][:, 1:]                                     # (B, 4, N, Cv), N = 2x2 tokens per crop
    tokens = {}
    for c, (r0, c0) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        for t in range(4):
            tokens[(r0 + t // 2, c0 + t % 2)] = high[:, c, t]  # the 4x4 high-res token grid
    for k, (dr, dc) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        group = torch.stack([tokens[(2 * i + dr, 2 * j + dc)] for i in range(2) for j in range(2)], 1)
        torch.testing.assert_close(inject[k], model.fusion.mlp(group))
    with pytest.raises(ValueError, match="fusion='mlp'"):
        tiny_config(fusion="concat", shortcut="deepstack")
    with pytest.raises(ValueError, match="shared_fusion=True"):
        tiny_config(fusion="mlp", shortcut="deepstack", shared_fusion=False)
    with pytest.raises(ValueError, match="at least 4 LLM layers"):
        shortcut_pattern("deepstack", 2, "u", 6, 3)


def test_naive_multires_puts_5n_image_tokens_in_the_context():
    torch.manual_seed(0)
    model = tiny_model(fusion="naive", shortcut="none")
    images, idx = batch()
    assert model.n_image_tokens == 5 * 4
    assert context_lengths(model, idx, images) == [5 * 4 + T] * 4
    base = tiny_model(fusion="mlp", shortcut="none")
    assert model.estimate_flops(T)["llm"] > 2 * base.estimate_flops(T)["llm"]  # (the LM head is large here)
    assert "20 image tokens" in model.describe()
    a = model.generate(images, idx, 4, temperature=0, use_cache=True)
    torch.testing.assert_close(a, model.generate(images, idx, 4, temperature=0, use_cache=False))
    with pytest.raises(ValueError, match="shortcut='none'"):
        tiny_config(fusion="naive", shortcut="sparse")


def test_gates_start_closed_and_learn():
    torch.manual_seed(0)
    gated = tiny_model(fusion="concat", shortcut="dense_bottom", density=3, gate=True)
    plain = tiny_model(fusion="concat", pairs=[])
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if k != "gates"})
    images, idx = batch()
    with torch.no_grad():
        torch.testing.assert_close(gated(images, idx)[0], plain(images, idx)[0])  # tanh(0) = 0: no shortcut yet
    gated.train()
    _, loss = gated(images, idx, targets=torch.randint(VOCAB, (2, T)))
    loss.backward()
    assert gated.gates.shape == (3,) and gated.gates.grad.abs().min() > 0  # every gate gets a gradient
    with torch.no_grad():
        gated.gates.fill_(0.5)
        _, inject = gated.fuse(gated.encode(images))
        f = gated.encode(images)[gated.shortcuts[0][0]]
        ref = gated.fusion(f[:, 0], f[:, 1:])
    torch.testing.assert_close(inject[gated.shortcuts[0][1]], torch.tanh(torch.tensor(0.5)) * ref)


def test_level_norm_puts_every_level_at_one_scale_before_the_fusion():
    model = lively(tiny_model(level_norm=True))
    assert set(model.level_norms) == {str(b) for b in model.levels}
    images, _ = batch()
    feats = model.encode(images)
    quiet = {b: f * (0.1 if b != model.main_level else 1.0) for b, f in feats.items()}  # quiet shortcut levels
    p1, inj1 = model.fuse(feats)
    p2, inj2 = model.fuse(quiet)
    # LayerNorm is scale-invariant: a 10x quieter level gives the same shortcut (off: ~nothing)
    rel = lambda a, b: ((a - b).abs().max() / a.abs().max()).item()
    assert all(rel(inj1[layer], inj2[layer]) < 1e-3 for layer in inj1)
    off = tiny_model()
    off.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("level_norms")})
    _, a = off.fuse(feats)
    _, b = off.fuse(quiet)
    assert all(rel(a[layer], b[layer]) > 0.5 for layer in a)
    assert "level_norm" in model.describe() and "level_norm" not in off.describe()


def test_a_fusion_per_level_leaves_the_prefix_to_the_shared_one():
    own = lively(tiny_model(shared_fusion=False))
    sources = {b for b, _ in own.shortcuts}
    assert set(own.level_fusions) == {str(b) for b in sources if b != own.main_level} and own.level_fusions
    shared = tiny_model()
    shared.load_state_dict({k: v for k, v in own.state_dict().items() if not k.startswith("level_fusions")})
    feats = own.encode(batch()[0])
    (p1, inj1), (p2, inj2) = own.fuse(feats), shared.fuse(feats)
    torch.testing.assert_close(p1, p2)  # the main level goes through the shared fusion either way
    assert all(not torch.allclose(inj1[layer], inj2[layer]) for layer in inj1)  # the shortcuts do not
    # a shortcut's own fusion learns from its shortcut alone: the prefix sends it no gradient
    p1.sum().backward()
    assert all(p.grad is None for p in own.level_fusions.parameters())
    assert own.num_params()["fusion"] > shared.num_params()["fusion"] and "a fusion per level" in own.describe()
