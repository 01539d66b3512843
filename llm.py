"""
A GPT-2-style decoder written from raw tensors, with a KV cache.

Two additions make it a multimodal LLM, and both live in GPT.forward:
- `prefix`: embeddings (the image tokens) placed before the text tokens;
- `inject`: {layer: tensor} added to the residual stream at the prefix positions
  just before that layer runs. This is the hook SparseCut's shortcuts use.
Parameter names follow GPT-2 (transformer.wte, h[i].attn.c_attn, ...), so a GPT-2
state dict of matching size loads (transpose HF's Conv1D weights first).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    block_size: int = 128   # longest sequence: image tokens + text tokens
    vocab_size: int = 512
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    prefix_bidirectional: bool = False  # image tokens see each other (and only each other)
    gelu: str = "tanh"  # GPT-2's approximation (its weights expect it); "exact": erf, cheaper on CPU

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.gelu not in ("tanh", "exact"):
            raise ValueError(f"GPTConfig: gelu={self.gelu!r} must be 'tanh' or 'exact'")


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cache=None, mask=None):
        """x: (B, T, C). cache: None, or a dict this layer extends with its keys/values.
        mask: None (causal), or (B or 1, 1, T, T) bool, True where a query may attend (GPT.forward)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].size(2)
                k = torch.cat([cache["k"], k], dim=2)   # (B, nh, past+T, hs)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        dropout = self.attn_dropout if self.training else 0.0
        if past == 0 and mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        elif past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            # new token i (at position past+i) may see every cached position and new tokens <= i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, C)           # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.approximate = "none" if config.gelu == "exact" else "tanh"

    def forward(self, x):
        # tanh: GPT-2's, so its weights give its logits; exact (erf) made our text step ~10%
        # cheaper on a 2-core CPU (docs/FINDINGS.md)
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, mask=None):
        x = x + self.attn(self.ln_1(x), cache, mask)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as GPT-2
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2's scaled init of residual projections
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def new_cache(self):
        """An empty KV cache: one dict per layer, filled by forward(..., cache=...)."""
        return [dict() for _ in range(self.config.n_layer)]

    def forward(self, idx, targets=None, prefix=None, inject=None, cache=None, segments=None):
        """
        idx:      (B, T) token ids.
        targets:  (B, T) next-token ids, -1 where no loss is wanted (e.g. the prompt).
        prefix:   (B, N, C) embeddings placed before the text (image tokens, positions 0..N-1).
        inject:   {layer: (B, N, C)} added at the prefix positions just before block `layer`.
        cache:    None, or a list from new_cache(); positions continue after what it holds.
        segments: None, or (B, T) ints, 0, 1, ...: several questions about one image in one row
                  (train.py's `pack`). Each segment sees the prefix and itself only, at the positions
                  it would have alone, so it computes exactly what it would alone.
        Returns (logits, loss): without targets, logits (B, T, V) for the text positions and loss
        None; with targets, only the positions that have one (targets >= 0) get logits, (n, V).
        """
        B, T = idx.shape
        N = 0 if prefix is None else prefix.size(1)
        past = 0 if cache is None or "k" not in cache[0] else cache[0]["k"].size(2)
        t = torch.arange(T, device=idx.device)
        if segments is None:
            pos = torch.arange(past, past + N + T, device=idx.device)          # (N+T,)
        else:  # each segment's positions restart after the image
            starts = torch.where(segments != F.pad(segments, (1, 0), value=-1)[:, :-1], t, 0).cummax(1).values
            pos = torch.cat([torch.arange(N, device=idx.device).expand(B, N), N + t - starts], 1)  # (B, N+T)
        longest = past + N + T if segments is None else int(pos.max()) + 1
        if longest > self.config.block_size:
            raise ValueError(f"sequence of {longest} tokens (image {N} + text {longest - N}) is longer "
                             f"than block_size={self.config.block_size}: shorten the prompt or raise block_size")
        if inject and prefix is None:
            raise ValueError("inject needs a prefix: shortcuts are added at the image-token positions")
        mask = None  # causal
        if past == 0 and (segments is not None or (self.config.prefix_bidirectional and N)):
            seg = F.pad(t.new_zeros(B, T) if segments is None else segments, (N, 0), value=-1)  # (B, N+T), image -1
            mask = torch.ones(N + T, N + T, dtype=torch.bool, device=idx.device).tril()
            if self.config.prefix_bidirectional:
                mask[:N, :N] = True                                      # the image is not a sequence
            mask = mask & ((seg[:, :, None] == seg[:, None, :]) | (seg[:, None, :] == -1))  # (B, N+T, N+T)
            mask = mask[:, None]                                         # (B, 1, N+T, N+T)
        x = self.transformer.wte(idx)                                    # (B, T, C)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)                # (B, N+T, C)
        x = self.transformer.drop(x + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            if inject and i in inject:
                # the sparse shortcut: image positions only, text untouched, length unchanged
                x = torch.cat([x[:, :N] + inject[i].to(x.dtype), x[:, N:]], dim=1)  # (B, N+T, C)
            x = block(x, None if cache is None else cache[i], mask)
        x = self.transformer.ln_f(x[:, N:])                              # (B, T, C) text only
        if targets is None:
            return self.lm_head(x), None                                 # (B, T, V)
        # training: the prompt has no loss, so only the positions with a target need the vocabulary
        # projection (in a packed row, about 1 in 5 text positions; the head is the widest matmul)
        keep = targets >= 0                                              # (B, T)
        logits = self.lm_head(x[keep])                                   # (n, V)
        loss = F.cross_entropy(logits.float(), targets[keep])           # nan if no position has one
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, prefix=None, inject=None, temperature=1.0, top_k=None,
                 use_cache=True, stop_token=None):
        """Sample max_new_tokens after idx (B, T). temperature=0 is greedy.

        With the cache: one prefill over prefix + prompt (where `inject` applies), then one
        token per step. Without it, every step re-runs the whole sequence, with `inject`
        applied each time, which gives the same result: the reference for the cache.
        Stops early once every row has produced stop_token. Returns (B, T + new) ids.
        """
        cache = self.new_cache() if use_cache else None
        logits, _ = self(idx, prefix=prefix, inject=inject, cache=cache)
        out, done = idx, torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        N = 0 if prefix is None else prefix.size(1)
        for step in range(max_new_tokens):
            nxt = sample_next(logits[:, -1, :], temperature, top_k)       # (B, 1)
            if stop_token is not None:
                nxt = torch.where(done[:, None], torch.full_like(nxt, stop_token), nxt)
                done = done | (nxt[:, 0] == stop_token)
            out = torch.cat([out, nxt], dim=1)
            if step == max_new_tokens - 1 or bool(done.all()) or N + out.size(1) >= self.config.block_size:
                break
            if use_cache:
                logits, _ = self(nxt, cache=cache)
            else:
                logits, _ = self(out, prefix=prefix, inject=inject)
        return out

    def num_params(self, non_embedding=True):
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:  # as nanoGPT: the position table is not compute, the tied wte is the head
            n -= self.transformer.wpe.weight.numel()
        return n


def sample_next(logits, temperature=1.0, top_k=None):
    """logits (B, V) -> next ids (B, 1). temperature 0 means greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    # shifted so the largest is 0 before dividing: a tiny temperature (1e-40) then gives -inf, never inf - inf = NaN
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits = logits.masked_fill(logits < v[:, [-1]], -float("inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
