"""
Exercise 8 (open-ended): design a shortcut pattern that beats sparse/'u' on the shapes data.

The main job's model (config/shapes_cpu.py) has a 6-block ViT whose main level is block 4, and a
4-layer GPT. Its pattern, shortcut_pattern('sparse', 2, 'u', 6, 4), is [(3, 1), (1, 3)]: block 3
into layer 1, block 1 into layer 3. Any list of (vit_block, llm_layer) pairs is a pattern
(SparseCutConfig's `pairs`): a block may feed several layers, a layer may take several blocks.

1. Predict. Which question types should a shortcut from a shallow block help (see the
   README's results: what does the main level lose)? Which LLM layer should receive it?
2. Write your pattern in `pattern()` below, at most 4 pairs (each shortcut costs one more
   fusion pass per sample).
3. The check only makes sure your pattern is one the harness can train:
       SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex8_design.py
4. Score it against sparse/'u' with the same budget and seeds (about 10 CPU minutes per run;
   the numbers of sparse/'u' are reused if you ran the experiments before):
       python experiments.py --only=sparsecut,custom --seeds=[0,1] --pairs="<your pattern>"
   Differences under about .05 are noise at one seed (the README's two-seed table): use two or three.
Going further: does the best pattern depend on the question types you train on
(`--train_args="--question_types=['texture','colour']"`)?
"""


def pattern():
    """-> list of (vit_block, llm_layer) pairs for the main job's model (ViT blocks 0..5, LLM layers 0..3)."""
    raise NotImplementedError("exercise 8: return your list of (vit_block, llm_layer) pairs; "
                              "see the docstring of exercises/ex8_design.py")
