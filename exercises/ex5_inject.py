"""
Exercise 5 (medium): the sparse shortcut itself, inside the GPT block loop.

The LLM's input is N image tokens (the `prefix`) followed by T text tokens. A shortcut is a
fused ViT level, a tensor (B, N, C), *added* to the residual stream at the N image positions
just before one chosen LLM layer runs:  h[:, :N] += inject[layer].
Text positions are not touched and the sequence length never changes.

Below is GPT.forward from llm.py without the cache, the loss, the attention masks (packed
questions, a bidirectional prefix: both off here) and the shortcut. Replace the
`raise` in the loop with the shortcut (one line).
    gpt: llm.GPT, idx (B, T), prefix (B, N, C), inject {layer: (B, N, C)} -> logits (B, T, V)
The check compares your logits with GPT.forward(idx, prefix=prefix, inject=inject):
    SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex5_inject.py
Then read GPT.forward in llm.py.
Going further: why inject before the layer and not after? Which positions does a shortcut
into the *last* layer still reach?
"""
import torch


def forward_with_inject(gpt, idx, prefix, inject):
    """gpt: llm.GPT, idx (B, T), prefix (B, N, C), inject {layer: (B, N, C)} -> logits (B, T, V)."""
    t = gpt.transformer
    B, T = idx.shape
    N = prefix.size(1)
    pos = torch.arange(N + T, device=idx.device)                    # (N+T,)
    x = torch.cat([prefix, t.wte(idx)], dim=1)                       # (B, N+T, C)
    x = t.drop(x + t.wpe(pos))
    for i, block in enumerate(t.h):
        if i in inject:
            raise NotImplementedError("exercise 5: add inject[i] to the image positions of x here; "
                                      "see the docstring of exercises/ex5_inject.py")
        x = block(x)                                                 # (B, N+T, C), causal
    return gpt.lm_head(t.ln_f(x[:, N:]))                            # (B, T, V) text only
