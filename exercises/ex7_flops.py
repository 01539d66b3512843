"""
Exercise 7 (harder, then open-ended): what one transformer block costs, counted and measured.

A matmul (m x k) @ (k x n) costs 2mkn FLOPs (one multiply and one add per term). Count the
forward FLOPs of one GPT block (llm.Block) on L tokens of width C, batch 1, matmuls only
(LayerNorms, GELU and softmax are a rounding error here):
- the weights: qkv projection, output projection, MLP up (C -> 4C) and down (4C -> C);
- attention: scores q @ k^T and the mix att @ v, over all heads together. Count all L x L
  scores: the causal mask does not make the kernels skip the masked half.
    block_flops(L, C) -> int
The check compares your formula with a measurement (torch.utils.flop_counter on a real block)
and with SparseCut.estimate_flops:
    SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex7_flops.py
Going further (no check): from which context length L does attention cost more than the
weights? What does that say about the 'naive' fusion (5N image tokens) at the paper's scale
(N = 576, C = 5120)? Then extend the count to the whole model: the ViT runs on 5 views, the
fusion once per level. Compare with SparseCut.estimate_flops and with measured counts, and
report which component dominates for the default config.
"""


def block_flops(L, C):
    """Forward matmul FLOPs of one GPT block on L tokens of width C (batch 1) -> int."""
    raise NotImplementedError("exercise 7: return the FLOP count as a formula of L and C; "
                              "see the docstring of exercises/ex7_flops.py")
