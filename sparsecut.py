"""
SparseCut: a ViT and a GPT wired by multi-grained fusion and sparse shortcuts.

    image (2S x 2S) -> low view + 4 crops -> ViT -> levels (one per block)
    main level   --fusion--> N prefix tokens in the LLM input (LLaVA style)
    shortcut k   --fusion--> added to the image positions before LLM layer l_k

vit.py, llm.py and fusion.py know nothing of each other; this file wires them.
"""
import math
import random
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from fusion import FUSIONS, gather_2x2, make_views
from llm import GPT, GPTConfig
from vit import ViT, ViTConfig

SHORTCUT_KINDS = ("none", "sparse", "dense_bottom", "dense_top", "deepstack")
ORDERS = ("u", "parallel", "random")


@dataclass
class SparseCutConfig:
    vit: ViTConfig = field(default_factory=ViTConfig)
    llm: GPTConfig = field(default_factory=GPTConfig)
    fusion: str = "cross_attention"  # 'mlp' (LLaVA-1.5, low view only, unless deepstack) | 'cross_attention' | 'concat'
    #                                  | 'naive' (all 5 views in the context: 5N tokens, no shortcuts)
    main_level: int = -2             # ViT block whose fused tokens form the LLM prefix (penultimate, as LLaVA)
    shortcut: str = "sparse"         # 'none' | 'sparse' | 'dense_bottom' | 'dense_top' | 'deepstack'
    #                                  ('deepstack', with 'mlp': crop tokens into layers 0..3, so 5 views)
    density: int = 2                 # number of shortcuts (the paper's 13B model: 8)
    order: str = "u"                 # 'u' (paper's figure) | 'parallel' (authors' code) | 'random'
    pairs: list = None               # explicit [(vit_block, llm_layer), ...], overrides the pattern
    gate: bool = False               # beyond the paper: each shortcut scaled by tanh(g), g = 0 at init
    level_norm: bool = False         # beyond the paper: a LayerNorm per tapped level before the shared
    #                                  fusion, so a quiet level reaches the LLM as loud as the main one
    shared_fusion: bool = True       # the paper: one fusion for every level; False (beyond the paper):
    #                                  each shortcut level its own, not shaped by the main level's features

    def __post_init__(self):
        if isinstance(self.vit, dict):
            self.vit = ViTConfig(**self.vit)
        if isinstance(self.llm, dict):
            self.llm = GPTConfig(**self.llm)
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; valid: {', '.join(FUSIONS)}")
        if self.fusion == "naive" and (self.shortcut != "none" or self.pairs):
            raise ValueError("fusion='naive' puts 5N image tokens in the context; shortcuts add to N image "
                             "positions: use shortcut='none' with it")
        if self.shortcut == "deepstack" and self.fusion != "mlp":
            raise ValueError("shortcut='deepstack' projects single crop tokens: use it with fusion='mlp'")
        if self.shortcut == "deepstack" and not self.shared_fusion and self.pairs is None:
            raise ValueError("shortcut='deepstack' takes every shortcut from the main level, so there is no "
                             "other level to give its own fusion: use shared_fusion=True with it")
        if not -self.vit.n_layer <= self.main_level < self.vit.n_layer:
            raise ValueError(f"main_level={self.main_level} is outside the ViT's {self.vit.n_layer} blocks")
        if self.pairs is not None:
            if not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(type(v) is int for v in p)
                       for p in self.pairs):
                raise ValueError(f"pairs must be a list of (vit_block, llm_layer) integer pairs, got {self.pairs!r}")
            self.pairs = [tuple(p) for p in self.pairs]
            for b, l in self.pairs:
                if not (0 <= b < self.vit.n_layer and 0 <= l < self.llm.n_layer):
                    raise ValueError(f"pair ({b}, {l}) is out of range: ViT blocks 0..{self.vit.n_layer - 1}, "
                                     f"LLM layers 0..{self.llm.n_layer - 1}")
        else:  # validates kind, density and order
            shortcut_pattern(self.shortcut, self.density, self.order, self.vit.n_layer, self.llm.n_layer,
                             self.main_level)


def spread(n, k):
    """k indices spread uniformly over 0..n-1, the last one at n-1: round((i+1)*n/k) - 1."""
    return [math.floor((i + 1) * n / k + 0.5) - 1 for i in range(k)]


def shortcut_pattern(kind, density, order, n_vit, n_llm, main_level=-2):
    """Which ViT block feeds which LLM layer: a list of (vit_block, llm_layer), by LLM layer.

    ViT levels are `density` blocks spread uniformly below the main level. LLM layers:
    'sparse' spreads them uniformly (the paper's 4, 9, ..., 39 for 8 into 40 layers),
    'dense_bottom' takes layers 0..density-1, 'dense_top' the last `density` layers.
    order 'u' pairs the deepest level with the lowest layer, nested like a U-Net, as in the
    paper's figure; 'parallel' pairs shallow with low, as the released code does.
    """
    if kind not in SHORTCUT_KINDS:
        raise ValueError(f"unknown shortcut kind {kind!r}; valid: {', '.join(SHORTCUT_KINDS)}")
    if order not in ORDERS:
        raise ValueError(f"unknown shortcut order {order!r}; valid: {', '.join(ORDERS)}")
    if kind == "none":
        return []
    main = main_level % n_vit
    if kind == "deepstack":  # DeepStack: the main level's 4 groups of crop tokens into layers 0..3
        if n_llm < 4:
            raise ValueError(f"shortcut='deepstack' needs at least 4 LLM layers, got {n_llm}")
        return [(main, layer) for layer in range(4)]
    if not 1 <= density <= min(main, n_llm):
        raise ValueError(f"density={density} does not fit: need 1 <= density <= min({main} ViT blocks below "
                         f"the main level {main}, {n_llm} LLM layers)")
    levels = spread(main, density)                                   # shallow -> deep
    layers = {"sparse": spread(n_llm, density),
              "dense_bottom": list(range(density)),
              "dense_top": list(range(n_llm - density, n_llm))}[kind]  # low -> high
    if order == "u":
        levels = levels[::-1]
    elif order == "random":
        random.Random(0).shuffle(levels)  # a fixed permutation: the pattern stays a pure function
    return list(zip(levels, layers))


class SparseCut(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.vit = ViT(config.vit)
        self.llm = GPT(config.llm)
        # One fusion module shared by every level, as in the paper. fusion='mlp' with
        # shortcut='none' is exactly the LLaVA-1.5 baseline: low view, one level, MLP projector.
        self.fusion = FUSIONS[config.fusion](config.vit.n_embd, config.llm.n_embd, config.vit.n_head)
        self.main_level = config.main_level % config.vit.n_layer
        self.shortcuts = config.pairs if config.pairs is not None else shortcut_pattern(
            config.shortcut, config.density, config.order, config.vit.n_layer, config.llm.n_layer,
            config.main_level)
        self.levels = sorted({self.main_level} | {b for b, _ in self.shortcuts})  # ViT blocks we tap
        # the baseline never looks at the crops, so the ViT runs on the low view only
        self.n_views = 1 if config.fusion == "mlp" and config.shortcut != "deepstack" else 5
        self.n_image_tokens = config.vit.n_patches * (5 if config.fusion == "naive" else 1)
        self.gates = nn.Parameter(torch.zeros(len(self.shortcuts))) if config.gate else None
        self.level_norms = nn.ModuleDict({str(b): nn.LayerNorm(config.vit.n_embd) for b in self.levels}) \
            if config.level_norm else None
        self.level_fusions = None if config.shared_fusion else nn.ModuleDict({
            str(b): FUSIONS[config.fusion](config.vit.n_embd, config.llm.n_embd, config.vit.n_head)
            for b, _ in self.shortcuts if b != self.main_level})

    def encode(self, images):
        """images (B, 3, 2S, 2S) in [0, 1] -> {vit_block: (B, V, N, Cv)}, view 0 low, 1..4 crops.

        One batched ViT call over all views. This is what a frozen ViT's feature cache stores.
        """
        B = images.size(0)
        low, crops = make_views(images)                                # (B,3,S,S), (B,4,3,S,S)
        views = low[:, None] if self.n_views == 1 else torch.cat([low[:, None], crops], dim=1)
        levels = self.vit(views.flatten(0, 1), depth=max(self.levels) + 1)  # each (B*V, N, Cv)
        return {b: levels[b].view(B, self.n_views, *levels[b].shape[1:]) for b in self.levels}

    @torch.no_grad()
    def cache_levels(self, images, device, batch=64, progress=True):
        """A frozen ViT's levels for every image, computed once: (M, 2S, 2S, 3) uint8 ->
        {vit_block: (M, V, N, Cv)} fp16 on the CPU. Later steps then cost only the fusion and the LLM."""
        from tqdm import tqdm
        from data.batches import to_float
        was_training = self.vit.training
        self.vit.eval()
        out = {b: [] for b in self.levels}
        for i in tqdm(range(0, len(images), batch), desc="cache", disable=not progress):
            f = self.encode(to_float(images[i:i + batch]).to(device))
            for b in self.levels:
                out[b].append(f[b].half().cpu())
        self.vit.train(was_training)
        return {b: torch.cat(v) for b, v in out.items()}

    def paths(self):
        """What fuse(remove=...) can take away: 'shortcut:B' (those from ViT block B), 'shortcuts' (all), 'crops'."""
        return [f"shortcut:{b}" for b in sorted({b for b, _ in self.shortcuts})] + \
            ["shortcuts"] * bool(self.shortcuts) + ["crops"] * (self.n_views > 1)

    def fuse(self, feats, remove=()):
        """{vit_block: (B, V, N, Cv)} -> prefix (B, N, Cl), inject {llm_layer: (B, N, Cl)}. remove: paths()
        taken away, for attribution only (sample.py --explain, evaluate.py --ablate); training never does."""
        assert set(remove) <= set(self.paths()), f"remove={sorted(remove)}; this model's paths: {self.paths()}"
        if self.level_norms is not None:  # each level at one scale, whatever its variance: the fusion is shared
            feats = {b: self.level_norms[str(b)](f) if str(b) in self.level_norms else f for b, f in feats.items()}
        if "crops" in remove:  # the fusion still reads 5 views, the 4 crops blank: only the low view speaks
            feats = {b: torch.cat([f[:, :1], torch.zeros_like(f[:, 1:])], 1) for b, f in feats.items()}  # (B,V,N,Cv)

        def fused(b):
            f = feats[b]
            own = self.level_fusions is not None and str(b) in self.level_fusions
            fusion = self.level_fusions[str(b)] if own else self.fusion
            return fusion(f[:, 0], f[:, 1:] if f.size(1) > 1 else None)  # (B, N, Cl)
        prefix = fused(self.main_level)
        if self.config.shortcut == "deepstack" and self.config.pairs is None:
            # DeepStack: the main level's 4N crop tokens, split by their offset in each 2x2 block
            # into 4 groups laid out like the low view, projected, one group per layer
            groups = gather_2x2(feats[self.main_level][:, 1:]).chunk(4, dim=-1)  # 4 x (B, N, Cv)
            shortcuts = [self.fusion.mlp(g) for g in groups]                    # 4 x (B, N, Cl)
        else:
            shortcuts = [fused(b) for b, _ in self.shortcuts]                   # each level fused once
        inject = {}
        for k, ((b, layer), s) in enumerate(zip(self.shortcuts, shortcuts)):
            if "shortcuts" in remove or f"shortcut:{b}" in remove:
                continue  # removed: the layer reads the stream as if this shortcut were not wired
            if self.gates is not None:
                s = torch.tanh(self.gates[k]) * s
            inject[layer] = inject.get(layer, 0) + s
        return prefix, inject

    def forward(self, images, idx, targets=None, feats=None, segments=None, remove=()):
        """images (B, 3, 2S, 2S) in [0, 1] (or feats from encode()), idx (B, T), targets (B, T),
        segments (B, T) or None: several questions about each image in one row (GPT.forward);
        remove: paths taken away (fuse).

        Returns (logits, loss) as GPT.forward (logits (B, T, V) without targets). The LLM sees N + T
        tokens whatever the fusion and the shortcuts: shortcuts add to image positions, they never
        lengthen the context.
        """
        prefix, inject = self.fuse(self.encode(images) if feats is None else feats, remove)
        return self.llm(idx, targets=targets, prefix=prefix, inject=inject, segments=segments)

    @torch.no_grad()
    def generate(self, images, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True,
                 stop_token=None, feats=None, remove=()):
        """Answer: idx (B, T) prompt ids -> (B, T + new). Shortcuts are applied once, at prefill;
        later tokens read the already-shifted image keys/values from the KV cache. remove: as fuse."""
        prefix, inject = self.fuse(self.encode(images) if feats is None else feats, remove)
        return self.llm.generate(idx, max_new_tokens, prefix=prefix, inject=inject, temperature=temperature,
                                 top_k=top_k, use_cache=use_cache, stop_token=stop_token)

    def describe(self):
        """A small text diagram of the wiring."""
        c, N = self.config, self.n_image_tokens
        S = c.vit.image_size
        views = f"low view {S}x{S}" + ("" if self.n_views == 1 else f" + 4 crops {S}x{S}")
        feeds = {}
        for b, l in self.shortcuts:  # a block may feed several layers, the main block too
            feeds.setdefault(b, []).append(l)
        lines = [f"SparseCut  fusion={c.fusion}  shortcut={'pairs' if c.pairs else c.shortcut}  "
                 f"order={c.order}  shortcuts={len(self.shortcuts)}" + ("  level_norm" if c.level_norm else "")
                 + ("" if c.shared_fusion else "  a fusion per level"),
                 f"  image {2 * S}x{2 * S} -> {views} -> ViT ({c.vit.n_layer} blocks, {N} tokens per view)",
                 f"  LLM context: {N} image tokens + text (block_size {c.llm.block_size}); "
                 f"{c.llm.n_layer} LLM layers", "",
                 "  ViT block               LLM"]
        for b in reversed(range(c.vit.n_layer)):
            if b == self.main_level:
                lines.append(f"  block {b} (main) ==fusion==> input: {N} prefix tokens")
            for k, l in enumerate(feeds.get(b, [])):
                what = f"crop group {k} -mlp-" if c.shortcut == "deepstack" and c.pairs is None else "-------fusion"
                lines.append(f"  block {b} {what}---> + before layer {l}: h[:, :{N}] += fused")
            if b != self.main_level and b not in feeds:
                lines.append(f"  block {b}" + ("   (above every tapped level: never run)"
                                              if b > max(self.levels) else ""))
        if len(self.shortcuts) > 1:
            deep_low = sorted(self.shortcuts, key=lambda p: p[1])[0][0] == max(b for b, _ in self.shortcuts)
            lines.append("  U-shaped: deeper ViT levels feed lower LLM layers" if deep_low else
                         "  deeper ViT levels feed higher LLM layers")
        lines.append("parameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in self.num_params().items()))
        return "\n".join(lines)

    def estimate_flops(self, text_len):
        """Analytic forward FLOPs per sample: {'vit', 'fusion', 'llm', 'total'}.

        A matmul (m x k) @ (k x n) costs 2mkn. Per transformer block of width C on L tokens:
        12 C^2 weights (qkv 3, proj 1, MLP 8) -> 24 L C^2, attention scores and mix -> 4 L^2 C.
        LayerNorms, GELUs and softmaxes are left out (under 1% at these sizes).
        ViT: V views (5; 1 for 'mlp' without 'deepstack') x (patch embed 2 N (3p^2) C + blocks up to the deepest tap).
        Fusion, per fused level: 'mlp' 2N(Cv Cl + Cl^2); 'concat' the same with 5 Cv;
        'cross_attention' adds q/k/v/out projections (2N Cv^2 + 2(4N)(2Cv^2) + 2N Cv^2),
        attention over 4N keys (4 N 4N Cv) and the FFN (16 N Cv^2) before its MLP.
        LLM: n_layer blocks on N + T tokens plus the head on the T text positions (2 T C V).
        """
        v, l = self.config.vit, self.config.llm
        N, Cv, Cl = v.n_patches, v.n_embd, l.n_embd
        block = lambda L, C: 24 * L * C * C + 4 * L * L * C
        depth = max(self.levels) + 1  # blocks above the deepest tap need not run
        vit = self.n_views * (2 * N * 3 * v.patch_size ** 2 * Cv + depth * block(N, Cv))
        mlp = lambda cin: 2 * N * (cin * Cl + Cl * Cl)
        per_level = {"mlp": mlp(Cv), "concat": mlp(5 * Cv), "naive": 5 * mlp(Cv),
                     "cross_attention": 2 * N * Cv * Cv * 2 + 2 * 4 * N * 2 * Cv * Cv + 4 * N * 4 * N * Cv
                     + 16 * N * Cv * Cv + mlp(Cv)}[self.config.fusion]
        fusion = per_level * (1 + len(self.shortcuts))
        L = self.n_image_tokens + text_len
        llm = l.n_layer * block(L, Cl) + 2 * text_len * Cl * l.vocab_size
        return {"vit": vit, "fusion": fusion, "llm": llm, "total": vit + fusion + llm}

    def num_params(self):
        norms = sum(p.numel() for m in (self.level_norms, self.level_fusions) if m is not None for p in m.parameters())
        return {"vit": self.vit.num_params(), "fusion": sum(p.numel() for p in self.fusion.parameters()) + norms,
                "llm": self.llm.num_params(non_embedding=False)}


def param_groups(modules, weight_decay):
    """AdamW parameter groups, as nanoGPT's configure_optimizers: modules {name: (module, lr)}, each
    module an nn.Module, a Parameter or None (a part this model has not, or a frozen one: left out);
    weight decay on 2-D weights only; parameters that do not require grad are left out."""
    groups = []
    for name, (module, lr) in modules.items():
        if module is None:
            continue
        params = [p for p in ([module] if isinstance(module, torch.nn.Parameter) else module.parameters())
                  if p.requires_grad]
        groups += [{"params": [p for p in params if p.dim() >= 2], "lr": lr, "base_lr": lr,
                    "weight_decay": weight_decay, "name": name},
                   {"params": [p for p in params if p.dim() < 2], "lr": lr, "base_lr": lr,
                    "weight_decay": 0.0, "name": name}]
    return [g for g in groups if g["params"]]
