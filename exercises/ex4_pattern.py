"""
Exercise 4 (medium): which ViT level feeds which LLM layer, the `shortcut_pattern`.

SparseCut adds K = `density` ViT levels into K chosen LLM layers. Write the rule that picks them.
- ViT levels: K blocks spread uniformly over the blocks *below* the main level
  (main = main_level % n_vit; blocks 0..main-1).
- LLM layers, by `kind`:
  'sparse'       K layers spread uniformly over 0..n_llm-1 (the paper: 8 into 40 -> 4, 9, ..., 39);
  'dense_bottom' layers 0..K-1;
  'dense_top'    the last K layers;
  'none'         no shortcuts at all: return [].
- "K indices spread uniformly over 0..n-1" means index i (from 0) is round((i+1) * n / K) - 1,
  so the last one is n-1. Round halves *up* (math.floor(x + 0.5)): Python's round() rounds
  halves to even.
- `order` pairs them: levels shallow -> deep and layers low -> high, then
  'parallel' zips them as they are (shallow ViT -> low LLM layer, the authors' code);
  'u' reverses the levels first (deepest ViT level -> lowest LLM layer, the paper's figure).
Return a list of (vit_block, llm_layer) tuples, by LLM layer. ('random' order, 'deepstack' and
the error messages are not part of the exercise.)
    SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex4_pattern.py
Then compare with sparsecut.shortcut_pattern and sparsecut.spread.
Going further: add a kind 'dense_middle' (K consecutive layers centred in the LLM) and draw
its wiring with SparseCut(SparseCutConfig(pairs=...)).describe().
"""


def shortcut_pattern(kind, density, order, n_vit, n_llm, main_level=-2):
    """-> [(vit_block, llm_layer), ...] for kind 'none' | 'sparse' | 'dense_bottom' | 'dense_top',
    order 'u' | 'parallel'."""
    raise NotImplementedError("exercise 4: return the list of (vit_block, llm_layer) pairs; "
                              "see the docstring of exercises/ex4_pattern.py")
