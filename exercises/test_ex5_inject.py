"""Check for exercise 5: the shortcut in the block loop gives the logits of llm.GPT.forward."""
import pytest
import torch

from exercises import ex5_inject as ex
from llm import GPT, GPTConfig

V, C, N, T = 30, 16, 5, 7


def reference(gpt, idx, prefix, inject):
    return gpt(idx, prefix=prefix, inject=inject)[0]


@pytest.mark.parametrize("layers", [[0], [2], [0, 1, 2], []])
def test_matches_gpt_forward(impl, layers):
    forward_with_inject = impl(ex.forward_with_inject, reference)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(block_size=32, vocab_size=V, n_layer=3, n_head=2, n_embd=C)).eval()
    idx, prefix = torch.randint(V, (2, T)), torch.randn(2, N, C)
    inject = {layer: torch.randn(2, N, C) for layer in layers}
    with torch.no_grad():
        got = forward_with_inject(gpt, idx, prefix, inject)
        want = gpt(idx, prefix=prefix, inject=inject)[0]
        plain = gpt(idx, prefix=prefix)[0]
    assert got.shape == (2, T, V)
    torch.testing.assert_close(got, want)
    if layers:  # the shortcut must move the logits, or this check proves nothing
        assert not torch.allclose(want, plain)


def test_gradients_flow(impl):
    forward_with_inject = impl(ex.forward_with_inject, reference)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(block_size=32, vocab_size=V, n_layer=3, n_head=2, n_embd=C))
    prefix, shortcut = torch.randn(2, N, C, requires_grad=True), torch.randn(2, N, C, requires_grad=True)
    forward_with_inject(gpt, torch.randint(V, (2, T)), prefix, {1: shortcut}).sum().backward()
    assert shortcut.grad is not None and shortcut.grad.abs().sum() > 0  # the fusion module learns through it
    assert prefix.grad.abs().sum() > 0
