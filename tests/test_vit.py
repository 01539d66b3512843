"""Tests for vit.py: levels, patch order, input and config checks."""
import pytest
import torch

from vit import ViT, ViTConfig, patchify


def tiny_vit(**kw):
    cfg = dict(image_size=8, patch_size=4, n_layer=3, n_head=4, n_embd=32)
    cfg.update(kw)
    return ViT(ViTConfig(**cfg)).eval()


def test_forward_returns_one_level_per_block():
    torch.manual_seed(0)
    vit = tiny_vit()
    x = torch.rand(2, 3, 8, 8)
    levels = vit(x)
    assert len(levels) == 3
    for h in levels:
        assert h.shape == (2, 4, 32)  # (B, N, C), N = (8 / 4)^2
    # level i is the output of block i applied to level i-1: block 0 first, no final norm
    for i in (1, 2):
        torch.testing.assert_close(levels[i], vit.blocks[i](levels[i - 1]))
    assert not torch.allclose(levels[1], levels[2])


def test_depth_limits_the_levels_and_skips_the_blocks_above():
    torch.manual_seed(0)
    vit = tiny_vit()
    x = torch.rand(2, 3, 8, 8)
    full = vit(x)
    calls = []
    vit.blocks[2].register_forward_hook(lambda m, i, o: calls.append(1))
    levels = vit(x, depth=2)
    assert len(levels) == 2
    assert calls == []  # blocks above `depth` never run
    for a, b in zip(levels, full):
        torch.testing.assert_close(a, b)


def test_patchify_is_row_major_with_c_dy_dx_inside():
    torch.manual_seed(0)
    p, s = 4, 3
    # a hand-built image whose patch k (row-major) has value k
    k = torch.arange(s * s, dtype=torch.float).view(s, s)
    img = k.repeat_interleave(p, 0).repeat_interleave(p, 1).expand(1, 3, s * p, s * p)
    out = patchify(img, p)
    assert out.shape == (1, s * s, 3 * p * p)
    for n in range(s * s):
        assert torch.all(out[0, n] == n)
    # inside a patch the pixels are ordered (channel, dy, dx)
    inner = torch.arange(3 * p * p, dtype=torch.float).view(3, p, p)
    img = inner.repeat(1, s, s)[None]  # every patch holds the same (c, dy, dx) code
    out = patchify(img, p)
    for n in range(s * s):
        torch.testing.assert_close(out[0, n], inner.flatten())


def test_tokens_follow_their_patches():
    # With the position table zeroed the ViT is permutation-equivariant over patches:
    # swapping two image patches must swap exactly the two matching tokens (row-major).
    torch.manual_seed(0)
    vit = tiny_vit()
    with torch.no_grad():
        vit.pos_embed.zero_()
    x = torch.rand(1, 3, 8, 8)
    y = x.clone()
    y[..., :4, :4], y[..., 4:, 4:] = x[..., 4:, 4:], x[..., :4, :4]  # patch 0 <-> patch 3
    a, b = vit(x)[-1], vit(y)[-1]
    torch.testing.assert_close(b[:, [3, 1, 2, 0]], a)


def test_wrong_view_size_raises():
    torch.manual_seed(0)
    vit = tiny_vit()
    with pytest.raises(ValueError, match="8x8"):
        vit(torch.rand(1, 3, 16, 16))


def test_config_validation():
    with pytest.raises(ValueError, match="image_size=10"):
        ViTConfig(image_size=10, patch_size=4)
    with pytest.raises(ValueError, match="n_head"):
        ViTConfig(n_embd=30, n_head=4)
    assert ViTConfig(image_size=16, patch_size=4).n_patches == 16
