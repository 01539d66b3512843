"""Check for exercise 7: FLOPs of one block, by hand, measured, and as SparseCut.estimate_flops uses them."""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from exercises import ex7_flops as ex
from llm import Block, GPTConfig
from sparsecut import SparseCut, SparseCutConfig


def measured(L, C):
    """Count the matmuls of a real llm.Block. The math attention backend runs as plain matmuls
    the counter sees; the fused CPU kernel would be left out of the count."""
    block = Block(GPTConfig(block_size=max(L, 1), n_layer=1, n_head=2, n_embd=C)).eval()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        block(torch.randn(1, L, C))
    return counter.get_total_flops()


def test_by_hand(impl):
    block_flops = impl(ex.block_flops, measured)
    assert block_flops(1, 2) == 24 * 1 * 4 + 4 * 1 * 2          # 96 + 8
    assert block_flops(10, 16) == 61440 + 6400                   # weights 24LC^2, attention 4L^2C


@pytest.mark.parametrize("L, C", [(1, 8), (7, 16), (20, 8), (3, 32)])
def test_matches_measurement(impl, L, C):
    block_flops = impl(ex.block_flops, measured)
    assert block_flops(L, C) == measured(L, C)


def test_llm_part_of_estimate_flops(impl):
    block_flops = impl(ex.block_flops, measured)
    cfg = SparseCutConfig(vit=dict(image_size=8, patch_size=4, n_layer=4, n_head=2, n_embd=16),
                          llm=dict(block_size=64, vocab_size=20, n_layer=3, n_head=2, n_embd=16),
                          fusion="concat", shortcut="sparse", density=2)
    model, T = SparseCut(cfg), 6
    L = model.n_image_tokens + T                                 # shortcuts do not lengthen the context
    head = 2 * T * 16 * 20                                       # lm_head on the text positions only
    assert model.estimate_flops(T)["llm"] == 3 * block_flops(L, 16) + head
