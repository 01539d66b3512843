"""Tests for llm.py: shapes, causality, prefix/inject, KV cache, loss, generation."""
import pytest
import torch
import torch.nn.functional as F

from llm import GPT, GPTConfig, sample_next

V, C = 50, 32


def tiny_gpt(**kw):
    cfg = dict(block_size=64, vocab_size=V, n_layer=3, n_head=4, n_embd=C)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def lively(model, scale=10.0):
    """Scale up every weight matrix: a fresh GPT-2 init predicts near-uniform logits and greedy
    decoding repeats one token, which would hide cache or inject bugs in the generated ids."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(scale)
    return model


def block_inputs(gpt, **forward_kw):
    """Run gpt(**forward_kw) and return the input of every block (forward hooks on h[i])."""
    seen, hooks = {}, []
    for i, block in enumerate(gpt.transformer.h):
        hooks.append(block.register_forward_hook(lambda m, args, out, i=i: seen.__setitem__(i, args[0].clone())))
    with torch.no_grad():
        gpt(**forward_kw)
    for h in hooks:
        h.remove()
    return seen


def image_kwargs(mode, n, layers):
    """forward/generate keywords for a test mode: 'text' (none), 'prefix' (n image tokens), or
    'prefix+inject' (and a shortcut before each of `layers`)."""
    kw = {}
    if mode != "text":
        kw["prefix"] = torch.randn(2, n, C)
    if mode == "prefix+inject":
        kw["inject"] = {layer: torch.randn(2, n, C) for layer in layers}
    return kw


def test_shapes():
    torch.manual_seed(0)
    gpt = tiny_gpt()
    idx = torch.randint(V, (2, 7))
    logits, loss = gpt(idx)
    assert logits.shape == (2, 7, V) and loss is None
    logits, loss = gpt(idx, prefix=torch.randn(2, 5, C))
    assert logits.shape == (2, 7, V)  # text positions only, not the prefix
    targets = torch.where(torch.arange(7) >= 4, idx, -1)                  # a loss on the last 3 only
    logits, loss = gpt(idx, targets=targets, prefix=torch.randn(2, 5, C))
    assert logits.shape == (2 * 3, V)  # with targets: only the positions that have one
    assert loss.shape == () and loss.item() > 0


@pytest.mark.parametrize("with_prefix", [False, True])
def test_causal(with_prefix):
    torch.manual_seed(0)
    gpt = tiny_gpt()
    idx = torch.randint(V, (2, 10))
    prefix = torch.randn(2, 5, C) if with_prefix else None
    t = 6
    idx2 = idx.clone()
    idx2[:, t] = (idx[:, t] + 1) % V
    with torch.no_grad():
        a, _ = gpt(idx, prefix=prefix)
        b, _ = gpt(idx2, prefix=prefix)
    torch.testing.assert_close(a[:, :t], b[:, :t])
    assert not torch.allclose(a[:, t:], b[:, t:])


def test_prefix_reaches_every_text_position():
    torch.manual_seed(0)
    gpt = tiny_gpt()
    idx = torch.randint(V, (2, 6))
    with torch.no_grad():
        a, _ = gpt(idx, prefix=torch.randn(2, 4, C))
        b, _ = gpt(idx, prefix=torch.randn(2, 4, C))
    assert all(not torch.allclose(a[:, t], b[:, t]) for t in range(6))


@pytest.mark.parametrize("mode", ["text", "prefix", "prefix+inject"])
def test_kv_cache_logits_equal_recompute(mode):
    torch.manual_seed(0)
    gpt = lively(tiny_gpt())
    idx = torch.randint(V, (2, 12))
    kw = image_kwargs(mode, n=5, layers=(0, 2))
    with torch.no_grad():
        full, _ = gpt(idx, **kw)
        cache = gpt.new_cache()
        parts = [gpt(idx[:, :4], cache=cache, **kw)[0]]        # prefill: prefix + 4 prompt tokens
        parts.append(gpt(idx[:, 4:7], cache=cache)[0])          # a chunk of 3 after the cache
        for t in range(7, 12):                                   # then one token at a time
            parts.append(gpt(idx[:, t:t + 1], cache=cache)[0])
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["text", "prefix", "prefix+inject"])
def test_generate_cache_matches_no_cache(mode):
    torch.manual_seed(0)
    gpt = lively(tiny_gpt())
    idx = torch.randint(V, (2, 5))
    kw = image_kwargs(mode, n=6, layers=(1,))
    a = gpt.generate(idx, 12, temperature=0, use_cache=True, **kw)
    b = gpt.generate(idx, 12, temperature=0, use_cache=False, **kw)
    assert a.shape == (2, 17)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :5], idx)
    if mode == "prefix+inject":  # the shortcut must matter for the ids, or this test proves nothing
        assert not torch.equal(a, gpt.generate(idx, 12, temperature=0, prefix=kw["prefix"]))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_inject_shifts_exactly_block_k_input_at_prefix_positions(k):
    torch.manual_seed(0)
    gpt = tiny_gpt()
    N, T = 5, 7
    idx, prefix = torch.randint(V, (2, T)), torch.randn(2, N, C)
    delta = torch.randn(2, N, C)
    plain = block_inputs(gpt, idx=idx, prefix=prefix)
    shifted = block_inputs(gpt, idx=idx, prefix=prefix, inject={k: delta})
    for i in range(k):
        assert torch.equal(plain[i], shifted[i])  # blocks below k untouched
    diff = shifted[k] - plain[k]
    torch.testing.assert_close(diff[:, :N], delta)
    assert torch.equal(diff[:, N:], torch.zeros_like(diff[:, N:]))  # text positions untouched
    assert shifted[k].shape == (2, N + T, C)  # length unchanged


def test_loss_ignores_targets_minus_one():
    torch.manual_seed(0)
    gpt = tiny_gpt()
    idx = torch.randint(V, (2, 8))
    targets = torch.randint(V, (2, 8))
    keep = torch.rand(2, 8) < 0.5
    keep[0, 0] = True
    _, loss = gpt(idx, targets=torch.where(keep, targets, -1))
    with torch.no_grad():
        expected = F.cross_entropy(gpt(idx)[0][keep], targets[keep])  # from every position's logits
    torch.testing.assert_close(loss, expected)
    _, loss_all = gpt(idx, targets=targets)
    assert not torch.allclose(loss, loss_all)


def test_longer_than_block_size_raises():
    torch.manual_seed(0)
    gpt = tiny_gpt(block_size=16)
    with pytest.raises(ValueError, match="block_size"):
        gpt(torch.randint(V, (1, 17)))
    with pytest.raises(ValueError, match="block_size"):
        gpt(torch.randint(V, (1, 10)), prefix=torch.randn(1, 7, C))
    gpt(torch.randint(V, (1, 9)), prefix=torch.randn(1, 7, C))  # exactly block_size is fine
    cache = gpt.new_cache()
    gpt(torch.randint(V, (1, 9)), prefix=torch.randn(1, 7, C), cache=cache)
    with pytest.raises(ValueError, match="block_size"):  # the cache counts too
        gpt(torch.randint(V, (1, 1)), cache=cache)


def test_inject_without_prefix_raises():
    torch.manual_seed(0)
    gpt = tiny_gpt()
    with pytest.raises(ValueError, match="prefix"):
        gpt(torch.randint(V, (1, 4)), inject={0: torch.randn(1, 4, C)})


def test_gpt2_parameter_names_and_tied_head():
    torch.manual_seed(0)
    gpt = tiny_gpt(n_layer=2)
    names = set(gpt.state_dict())
    for name in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
                 "transformer.ln_f.bias", "lm_head.weight"]:
        assert name in names
    for i in range(2):
        for sub in ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]:
            assert f"transformer.h.{i}.{sub}" in names
    assert gpt.transformer.h[0].attn.c_attn.weight.shape == (3 * C, C)
    # weight tying: one tensor, one storage
    assert gpt.lm_head.weight is gpt.transformer.wte.weight
    assert gpt.lm_head.weight.data_ptr() == gpt.transformer.wte.weight.data_ptr()


def test_gelu_switch_tanh_is_gpt2s_and_exact_is_erf():
    torch.manual_seed(0)
    x = torch.randn(2, 5, C)
    mlps = {g: lively(tiny_gpt(gelu=g)).transformer.h[0].mlp for g in ("tanh", "exact")}  # scaled: GELU's bend matters
    mlps["exact"].load_state_dict(mlps["tanh"].state_dict())
    m = mlps["tanh"]
    for g, approximate in (("tanh", "tanh"), ("exact", "none")):
        expected = m.c_proj(F.gelu(m.c_fc(x), approximate=approximate))
        assert torch.allclose(mlps[g](x), expected, atol=1e-5)
    assert (mlps["tanh"](x) - mlps["exact"](x)).abs().max() > 1e-4  # the two differ by up to ~5e-4 per unit
    with pytest.raises(ValueError, match="gelu='relu' must be 'tanh' or 'exact'"):
        GPTConfig(gelu="relu")


def test_temperature_zero_is_greedy():
    torch.manual_seed(0)
    gpt = lively(tiny_gpt())
    idx = torch.randint(V, (2, 4))
    out = gpt.generate(idx, 6, temperature=0)
    seq = idx
    with torch.no_grad():
        for _ in range(6):  # the greedy loop by hand
            logits, _ = gpt(seq)
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_top_k_only_samples_the_top_k():
    torch.manual_seed(0)
    logits = (torch.randn(1, V) * 0.1).expand(4000, V)  # nearly flat: any id could come out
    top3 = set(torch.topk(logits[0], 3).indices.tolist())
    ids = set(sample_next(logits, temperature=1.0, top_k=3).flatten().tolist())
    assert ids == top3
    assert len(set(sample_next(logits, temperature=1.0).flatten().tolist())) > 3
    # through generate: top_k=1 sampling is greedy
    gpt = lively(tiny_gpt())
    idx = torch.randint(V, (2, 4))
    assert torch.equal(gpt.generate(idx, 6, temperature=1.0, top_k=1), gpt.generate(idx, 6, temperature=0))


def test_stop_token_stops_early():
    torch.manual_seed(0)
    gpt = lively(tiny_gpt())
    idx = torch.randint(V, (1, 4))
    full = gpt.generate(idx, 10, temperature=0)
    stop = full[0, 4 + 2].item()                     # the third new token
    j = (full[0, 4:] == stop).nonzero()[0].item()    # its first appearance
    out = gpt.generate(idx, 10, temperature=0, stop_token=stop)
    assert out.size(1) == 4 + j + 1 < full.size(1)
    assert torch.equal(out, full[:, :4 + j + 1])
    # a finished row is padded with stop_token while the others go on
    idx2 = torch.cat([idx, torch.randint(V, (1, 4))])
    full2 = gpt.generate(idx2, 10, temperature=0)
    out2 = gpt.generate(idx2, 10, temperature=0, stop_token=stop)
    new = out2[:, 4:]
    for r in range(2):
        hits = (new[r] == stop).nonzero()
        if len(hits):
            first = hits[0].item()
            assert torch.equal(new[r, :first], full2[r, 4:4 + first])
            assert torch.all(new[r, first:] == stop)
        else:
            assert out2.size(1) == full2.size(1)
            assert torch.equal(out2[r], full2[r])


def test_prefix_bidirectional_lets_image_tokens_see_later_image_tokens_only():
    torch.manual_seed(0)
    causal, bidir = tiny_gpt(), tiny_gpt(prefix_bidirectional=True)
    bidir.load_state_dict(causal.state_dict())
    idx, prefix = torch.randint(V, (2, 6)), torch.randn(2, 4, C)
    changed = prefix.clone()
    changed[:, -1] = torch.randn(2, C)  # only the last image token moves
    for gpt in (causal, bidir):
        a = block_inputs(gpt, idx=idx, prefix=prefix)[2]
        b = block_inputs(gpt, idx=idx, prefix=changed)[2]
        earlier_moved = not torch.allclose(a[:, :3], b[:, :3])
        assert earlier_moved == (gpt is bidir)  # earlier image tokens see the last one only if bidirectional
    # text stays causal: changing a later text token leaves earlier text logits alone
    idx2 = idx.clone()
    idx2[:, 4] = (idx[:, 4] + 1) % V
    with torch.no_grad():
        a, _ = bidir(idx, prefix=prefix)
        b, _ = bidir(idx2, prefix=prefix)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    # and the KV cache still equals recompute
    gen = lively(bidir)
    torch.testing.assert_close(*(gen.generate(idx, 5, prefix=prefix, temperature=0, use_cache=u) for u in (True, False)))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_segments_compute_what_each_question_computes_alone(bidirectional):
    """Packing: three questions after one image in one row give, token for token, the logits each
    gives alone after that image (same positions, nothing seen of the other questions)."""
    torch.manual_seed(0)
    gpt = lively(tiny_gpt(prefix_bidirectional=bidirectional), 2.0)
    prefix, inject = torch.randn(1, 4, C), {1: torch.randn(1, 4, C)}
    parts = [torch.randint(V, (1, n)) for n in (5, 3, 7)]
    packed = torch.cat(parts, 1)                                                     # (1, 15)
    segments = torch.cat([torch.full((1, p.size(1)), k) for k, p in enumerate(parts)], 1)
    with torch.no_grad():
        together, _ = gpt(packed, prefix=prefix, inject=inject, segments=segments)
        alone = torch.cat([gpt(p, prefix=prefix, inject=inject)[0] for p in parts], 1)
        mixed, _ = gpt(packed, prefix=prefix, inject=inject)                         # no segments: one text
    torch.testing.assert_close(together, alone)
    assert not torch.allclose(mixed[:, 5:], alone[:, 5:])  # without them the later questions see the earlier
    # block_size bounds the longest segment, not the row: 4 + 7 tokens fit 11, 4 + 15 would not
    small = tiny_gpt(block_size=11)
    small.load_state_dict(gpt.state_dict() | {"transformer.wpe.weight": gpt.transformer.wpe.weight[:11]})
    with torch.no_grad():
        small(packed, prefix=prefix, segments=segments)
    with pytest.raises(ValueError, match="block_size=11"):
        small(packed, prefix=prefix)
