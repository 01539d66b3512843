"""Check for exercise 6: cached greedy decoding gives the ids of full recomputation, one token a step."""
import inspect

import torch

from exercises import ex6_kv_cache as ex
from llm import GPT, GPTConfig

V, C, N, T, NEW = 30, 16, 4, 5, 8


def reference(gpt, idx, max_new_tokens, prefix, inject):
    return gpt.generate(idx, max_new_tokens, prefix=prefix, inject=inject, temperature=0)


def recompute(gpt, idx, max_new_tokens, prefix, inject):
    """No cache: every step runs prefix + the whole text again, shortcuts included."""
    out = idx
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits, _ = gpt(out, prefix=prefix, inject=inject)           # (B, T', V)
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


def lively_gpt():
    """Weights scaled up: a fresh init decodes one repeated token, which would hide cache bugs."""
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(block_size=32, vocab_size=V, n_layer=3, n_head=2, n_embd=C)).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            if p.dim() > 1:
                p.mul_(10.0)
    return gpt


def test_equals_recompute_one_token_per_step(impl):
    generate_greedy = impl(ex.generate_greedy, reference)
    gpt = lively_gpt()
    idx, prefix = torch.randint(V, (2, T)), torch.randn(2, N, C)
    inject = {0: torch.randn(2, N, C), 2: torch.randn(2, N, C)}
    want = recompute(gpt, idx, NEW, prefix, inject)
    # the shortcuts must change the ids, or this check could not see them forgotten
    assert not torch.equal(want, recompute(gpt, idx, NEW, prefix, {}))
    calls = []  # (text tokens fed, prefix given, cache given) for every call of gpt

    def record(module, args, kwargs):
        a = inspect.signature(module.forward).bind(*args, **kwargs).arguments
        calls.append((a["idx"].size(1), a.get("prefix") is not None, a.get("cache") is not None))
    gpt.register_forward_pre_hook(record, with_kwargs=True)
    got = generate_greedy(gpt, idx, NEW, prefix, inject)
    assert calls, "call the model as gpt(...): gpt.forward(...) skips the hooks this check watches"
    assert got.shape == (2, T + NEW)
    assert torch.equal(got, want)
    assert calls[0] == (T, True, True), "prefill: the prompt, with the prefix and a cache, in one call"
    assert len(calls) >= NEW, "one call per new token"
    assert all(c == (1, False, True) for c in calls[1:]), "after prefill: one token, the cache, no prefix"
