"""
A small Vision Transformer that returns the hidden states of every block.

SparseCut taps several depths of the vision encoder (its "levels"), so unlike a
classifier ViT this one has no class token and no head: forward() returns the
patch tokens after each block, and the caller picks the levels it needs.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ViTConfig:
    image_size: int = 32    # side of one view in pixels (the low view and each crop)
    patch_size: int = 4
    n_layer: int = 6
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig: image_size={self.image_size} is not a multiple of "
                             f"patch_size={self.patch_size}")
        if self.n_embd % self.n_head:
            raise ValueError(f"ViTConfig: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

    @property
    def n_patches(self):
        return (self.image_size // self.patch_size) ** 2


def patchify(x, p):
    """(B, 3, S, S) -> (B, N, 3*p*p), patches in row-major order, pixels (c, dy, dx) inside."""
    B, C, S, _ = x.shape
    s = S // p
    x = x.reshape(B, C, s, p, s, p)                     # (B, C, s, p, s, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                     # (B, s, s, C, p, p)
    return x.reshape(B, s * s, C * p * p)               # (B, N, C*p*p)


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention: every patch sees every patch."""

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, N, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, N, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, N, C)          # (B, N, C)
        return self.proj(y)


class Block(nn.Module):
    """Pre-LN transformer block, as in ViT and GPT-2."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias),
            nn.Dropout(config.dropout),
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class ViT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        p = config.patch_size
        self.patch_embed = nn.Linear(3 * p * p, config.n_embd, bias=config.bias)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.n_patches, config.n_embd))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.apply(self._init_weights)
        nn.init.normal_(self.pos_embed, std=0.02)
        # GPT-2's scaled init of the residual projections keeps deep stacks stable
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x, depth=None):
        """x: (B, 3, S, S) floats in [0, 1] -> list of `depth` (default n_layer) tensors (B, N, C),
        block 0 first. Blocks above `depth` are not run: nobody would read them.

        No final LayerNorm: like the CLIP hidden states LLaVA taps, every level is the
        raw residual stream after that block.
        """
        B, _, S, _ = x.shape
        if S != self.config.image_size:
            raise ValueError(f"ViT expects {self.config.image_size}x{self.config.image_size} views, got {S}x{S}")
        x = patchify(x * 2.0 - 1.0, self.config.patch_size)   # (B, N, 3*p*p), centred pixels
        x = self.drop(self.patch_embed(x) + self.pos_embed)  # (B, N, C)
        levels = []
        for block in self.blocks[:depth]:
            x = block(x)
            levels.append(x)                                # (B, N, C)
        return levels

    def num_params(self):
        return sum(p.numel() for p in self.parameters())
