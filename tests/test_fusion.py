"""Tests for fusion.py: views, the 2x2 gather, and every fusion module."""
import pytest
import torch

from fusion import FUSIONS, ConcatFusion, CrossAttentionFusion, MLPProjector, gather_2x2, make_views

B, S, CV, CL = 2, 3, 16, 24   # batch, crop grid side (N = S*S tokens), ViT width, LLM width
N = S * S


def grid_crops(s, batch=1):
    """Crop tokens (batch, 4, s*s, 2) whose channels are the (row, col) in the stitched 2s x 2s grid."""
    crops = torch.zeros(batch, 4, s * s, 2)
    for tile in range(4):
        tr, tc = divmod(tile, 2)  # TL, TR, BL, BR
        for n in range(s * s):
            r, c = divmod(n, s)
            crops[:, tile, n] = torch.tensor([tr * s + r, tc * s + c], dtype=torch.float)
    return crops


def test_make_views_shapes_low_mean_and_crop_order():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16)
    low, crops = make_views(images)
    assert low.shape == (2, 3, 8, 8)
    assert crops.shape == (2, 4, 3, 8, 8)
    # the low view is the mean of each 2x2 pixel block
    torch.testing.assert_close(low, images.reshape(2, 3, 8, 2, 8, 2).mean(dim=(3, 5)))
    # crops are the TL, TR, BL, BR tiles
    tiles = [images[..., :8, :8], images[..., :8, 8:], images[..., 8:, :8], images[..., 8:, 8:]]
    for k, tile in enumerate(tiles):
        assert torch.equal(crops[:, k], tile)


def test_make_views_rejects_odd_or_non_square():
    with pytest.raises(ValueError, match="square"):
        make_views(torch.rand(1, 3, 8, 6))
    with pytest.raises(ValueError, match="even"):
        make_views(torch.rand(1, 3, 7, 7))


def test_gather_2x2_picks_the_covering_high_res_tokens():
    torch.manual_seed(0)
    g = gather_2x2(grid_crops(S, batch=2))  # (2, N, 4*2)
    assert g.shape == (2, N, 8)
    g = g.view(2, S, S, 4, 2)  # (B, i, j, k, (row, col))
    for i in range(S):
        for j in range(S):
            expected = torch.tensor([[2 * i, 2 * j], [2 * i, 2 * j + 1],
                                     [2 * i + 1, 2 * j], [2 * i + 1, 2 * j + 1]], dtype=torch.float)
            for b in range(2):
                assert torch.equal(g[b, i, j], expected), (i, j)


def test_concat_fusion_feeds_low_then_the_covering_high_res_tokens():
    torch.manual_seed(0)
    fusion = ConcatFusion(2, CL)
    crops = grid_crops(S)
    low = torch.randn(1, N, 2)
    seen = []
    fusion.mlp[0].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    fusion(low, crops)
    x = seen[0].view(1, S, S, 5, 2)          # (B, i, j, [low, 4 high], C)
    assert torch.equal(x[:, :, :, 0].reshape(1, N, 2), low)
    for i in range(S):
        for j in range(S):
            high = x[0, i, j, 1:]
            assert high.tolist() == [[2 * i, 2 * j], [2 * i, 2 * j + 1], [2 * i + 1, 2 * j], [2 * i + 1, 2 * j + 1]]


@pytest.mark.parametrize("kind", sorted(FUSIONS))
def test_every_fusion_maps_to_n_tokens_at_llm_width(kind):
    torch.manual_seed(0)
    fusion = FUSIONS[kind](CV, CL, 4)
    low, crops = torch.randn(B, N, CV), torch.randn(B, 4, N, CV)
    out = fusion(low, crops)
    if kind == "naive":  # no fusion: all 5 views side by side, low view first, then TL, TR, BL, BR
        assert out.shape == (B, 5 * N, CL)
        torch.testing.assert_close(out[:, :N], fusion.mlp(low))
        torch.testing.assert_close(out[:, 3 * N:4 * N], fusion.mlp(crops[:, 2]))
    else:
        assert out.shape == (B, N, CL)


def test_mlp_projector_ignores_crops():
    torch.manual_seed(0)
    fusion = MLPProjector(CV, CL)
    low = torch.randn(B, N, CV)
    a = fusion(low, torch.randn(B, 4, N, CV))
    b = fusion(low, torch.randn(B, 4, N, CV))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, fusion(low, None))


@pytest.mark.parametrize("cls", [CrossAttentionFusion, ConcatFusion])
def test_multi_grained_fusion_depends_on_low_and_crops(cls):
    torch.manual_seed(0)
    fusion = cls(CV, CL, 4)
    low, crops = torch.randn(B, N, CV), torch.randn(B, 4, N, CV)
    out = fusion(low, crops)
    assert not torch.allclose(out, fusion(low, torch.randn(B, 4, N, CV)))
    assert not torch.allclose(out, fusion(torch.randn(B, N, CV), crops))


def test_cross_attention_checks_heads():
    with pytest.raises(ValueError, match="n_head"):
        CrossAttentionFusion(30, CL, 4)


@pytest.mark.parametrize("kind", sorted(FUSIONS))
def test_every_fusion_overfits_one_batch(kind):
    torch.manual_seed(0)
    fusion = FUSIONS[kind](CV, CL, 4)
    low, crops = torch.randn(B, N, CV), torch.randn(B, 4, N, CV)
    target = torch.randn(B, N, CL)
    if kind == "naive":  # each of 5N tokens is mapped alone, so fit a per-token function of it
        target = torch.cat([low[:, None], crops], 1).flatten(1, 2) @ torch.randn(CV, CL) / CV ** 0.5
    opt = torch.optim.Adam(fusion.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = torch.nn.functional.mse_loss(fusion(low, crops), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
