"""
Exercise 6 (harder): greedy decoding with a KV cache, and where the shortcuts go in it.

Re-running the whole sequence for every new token repeats the same work: the keys and values
of earlier positions never change. GPT.forward(..., cache=cache) keeps them: each layer appends
the new positions' keys/values to its dict in `cache`, and new positions continue after them.
SparseCut applies its shortcuts once, at prefill; later tokens read the already-shifted image
keys/values from the cache.

Write generate_greedy:
1. prefill: one call on the prompt with the prefix, the shortcuts and a fresh gpt.new_cache();
2. then max_new_tokens times: take the argmax of the last position's logits as the next token,
   append it, and (unless done) run only that one token through gpt with the cache.
    gpt: llm.GPT, idx (B, T), prefix (B, N, C), inject {layer: (B, N, C)} -> ids (B, T + max_new_tokens)
gpt(idx, prefix=..., inject=..., cache=...) returns (logits (B, T, V), loss). The check compares
your ids with recomputing everything at every step, and watches what you feed the model:
    SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex6_kv_cache.py
Then read GPT.generate in llm.py (it also samples, stops early, and respects block_size).
Going further: time both ways for 100 new tokens; how does each grow with the length?
"""
import torch


@torch.no_grad()
def generate_greedy(gpt, idx, max_new_tokens, prefix, inject):
    """gpt: llm.GPT, idx (B, T), prefix (B, N, C), inject {layer: (B, N, C)} -> (B, T + max_new_tokens)."""
    cache = gpt.new_cache()  # one dict per layer; gpt(..., cache=cache) fills it
    raise NotImplementedError("exercise 6: prefill, then one token at a time with the cache; "
                              "see the docstring of exercises/ex6_kv_cache.py")
