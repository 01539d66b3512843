"""
Exercise 1 (easy, pencil and paper): predict what each variant costs before you build it.

SparseCut's promise: high-res detail reaches the LLM *without lengthening its context*. Check
the promise by prediction. For a SparseCutConfig `cfg` and a prompt of `text_len` tokens, predict
- vit_views:  how many images the ViT encodes per sample: the low view, plus the 4 crops
              when something reads them;
- llm_tokens: how many positions every LLM layer runs on: image tokens + text tokens.

The variants (cfg.fusion, cfg.shortcut): ('mlp', 'none') is LLaVA-1.5; ('concat', 'sparse') and
('cross_attention', 'dense_bottom') are SparseCut; ('naive', 'none') puts all five views in the
context; ('mlp', 'deepstack') is DeepStack. Read fusion.py's docstrings and the comments of
SparseCutConfig in sparsecut.py, not SparseCut.__init__ (that is the answer). Useful:
cfg.vit.image_size, cfg.vit.patch_size (one token per patch of one view).

The check builds tiny models of each variant and *measures* both numbers with forward hooks:
    SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex1_context.py
Going further: at the paper's scale (336 px views, 14 px patches, 64 text tokens), how many
times longer is the 'naive' context than SparseCut's, and how much more does the attention
part of each LLM layer cost (it grows with the square of the length)?
"""


def predict(cfg, text_len):
    """cfg: SparseCutConfig, text_len: int -> (vit_views, llm_tokens), two ints."""
    raise NotImplementedError("exercise 1: return (vit_views, llm_tokens) for cfg; "
                              "see the docstring of exercises/ex1_context.py")
