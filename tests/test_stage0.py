"""stage0.py: the label-free stage 0 that your own data (no scene graph) gets."""
import torch

from fusion import make_views
from stage0 import PixelStage0, pixel_targets
from vit import ViT, ViTConfig


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
