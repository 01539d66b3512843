"""
Multi-grained fusion: the low-res view plus 2x2 high-res crops -> N tokens at LLM width.

The ViT sees each image five times: once whole at low resolution (`low`) and four
times as full-resolution tiles (`crops`). A fusion module turns the low tokens and the
crop tokens of one ViT level into exactly N tokens (as many as the low view alone),
so high-res detail reaches the LLM without lengthening its context.
Every module here maps (low (B, N, Cv), crops (B, 4, N, Cv) or None) -> (B, N, Cl)
and ends in LLaVA-1.5's projector MLP (Linear, GELU, Linear).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_views(images):
    """images (B, 3, 2S, 2S) -> low (B, 3, S, S), crops (B, 4, 3, S, S) in order TL, TR, BL, BR.

    The low view is an area (box-filter) downsample: antialiased, and for the 2x case the
    exact mean of each 2x2 pixel block, so detail finer than 2 px averages away.
    """
    B, C, H, W = images.shape
    if H != W or H % 2:
        raise ValueError(f"images must be square with an even side (B, 3, 2S, 2S), got {tuple(images.shape)}")
    S = H // 2
    low = F.interpolate(images, size=(S, S), mode="area")          # (B, 3, S, S)
    crops = images.reshape(B, C, 2, S, 2, S).permute(0, 2, 4, 1, 3, 5)  # (B, 2, 2, 3, S, S)
    return low, crops.reshape(B, 4, C, S, S)                       # (B, 4, 3, S, S)


def projector(c_in, c_out):
    """LLaVA-1.5's 'mlp2x_gelu': the last step of every fusion, to the LLM width."""
    return nn.Sequential(nn.Linear(c_in, c_out), nn.GELU(), nn.Linear(c_out, c_out))


class MLPProjector(nn.Module):
    """The LLaVA-1.5 baseline: low-res tokens only, the crops are ignored."""

    def __init__(self, vit_dim, llm_dim, n_head=None):
        super().__init__()
        self.mlp = projector(vit_dim, llm_dim)

    def forward(self, low, crops=None):
        return self.mlp(low)                                        # (B, N, Cl)


class CrossAttentionFusion(nn.Module):
    """The authors' `cross_attention`: each low-res token queries all 4N crop tokens.

    Post-LN as in their code: x = LN(q + MHA(q, kv, kv)); x = LN(x + FFN(x)); then the MLP.
    No extra position encoding: the ViT features already carry it.
    """

    def __init__(self, vit_dim, llm_dim, n_head=4):
        super().__init__()
        if vit_dim % n_head:
            raise ValueError(f"CrossAttentionFusion: vit_dim={vit_dim} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.q = nn.Linear(vit_dim, vit_dim)
        self.kv = nn.Linear(vit_dim, 2 * vit_dim)
        self.proj = nn.Linear(vit_dim, vit_dim)
        self.ln_1 = nn.LayerNorm(vit_dim)
        self.ffn = nn.Sequential(nn.Linear(vit_dim, 4 * vit_dim), nn.GELU(), nn.Linear(4 * vit_dim, vit_dim))
        self.ln_2 = nn.LayerNorm(vit_dim)
        self.mlp = projector(vit_dim, llm_dim)

    def forward(self, low, crops):
        B, N, C = low.shape
        kv = crops.reshape(B, 4 * N, C)                             # (B, 4N, C) all crop tokens
        hs = C // self.n_head
        q = self.q(low).view(B, N, self.n_head, hs).transpose(1, 2)  # (B, nh, N, hs)
        k, v = self.kv(kv).split(C, dim=2)
        k = k.view(B, 4 * N, self.n_head, hs).transpose(1, 2)       # (B, nh, 4N, hs)
        v = v.view(B, 4 * N, self.n_head, hs).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)                  # (B, nh, N, hs)
        y = self.proj(y.transpose(1, 2).reshape(B, N, C))            # (B, N, C)
        x = self.ln_1(low + y)
        x = self.ln_2(x + self.ffn(x))
        return self.mlp(x)                                           # (B, N, Cl)


def gather_2x2(crops):
    """crops (B, 4, s*s, C), tiles TL, TR, BL, BR -> (B, s*s, 4*C).

    Stitches the tiles into one 2s x 2s token grid, then gives each low-res token (i, j)
    the four high-res tokens covering the same area: rows 2i..2i+1, columns 2j..2j+1,
    in row-major order. Space-to-depth; no attention.
    """
    B, _, N, C = crops.shape
    s = math.isqrt(N)
    assert s * s == N, "crop tokens must form a square grid"
    g = crops.reshape(B, 2, 2, s, s, C)                  # (B, tile_row, tile_col, s, s, C)
    g = g.permute(0, 1, 3, 2, 4, 5).reshape(B, 2 * s, 2 * s, C)  # (B, 2s, 2s, C) stitched grid
    g = g.reshape(B, s, 2, s, 2, C).permute(0, 1, 3, 2, 4, 5)    # (B, s, s, 2, 2, C)
    return g.reshape(B, N, 4 * C)                        # (B, N, 4C)


class ConcatFusion(nn.Module):
    """The authors' `cross_mlp` (what their training scripts use): [low, 4 high] channels -> MLP."""

    def __init__(self, vit_dim, llm_dim, n_head=None):
        super().__init__()
        self.mlp = projector(5 * vit_dim, llm_dim)

    def forward(self, low, crops):
        x = torch.cat([low, gather_2x2(crops)], dim=-1)   # (B, N, 5C)
        return self.mlp(x)                                 # (B, N, Cl)


class NaiveFusion(nn.Module):
    """What one would do without fusion: all 5 views' tokens in the context, 5N tokens (B, 5N, Cl).
    Not SparseCut: the comparison point for its cost (every LLM layer pays for 5x the image tokens)."""

    def __init__(self, vit_dim, llm_dim, n_head=None):
        super().__init__()
        self.mlp = projector(vit_dim, llm_dim)

    def forward(self, low, crops):
        return self.mlp(torch.cat([low[:, None], crops], dim=1).flatten(1, 2))  # (B, 5N, Cl)


FUSIONS = {"mlp": MLPProjector, "cross_attention": CrossAttentionFusion, "concat": ConcatFusion,
           "naive": NaiveFusion}
