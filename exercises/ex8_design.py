"""
Exercise 8 (open-ended): design a shortcut pattern that beats sparse/'u' where shortcuts matter.

In the main job every ViT level keeps colour and texture, so shortcuts have nothing to add there.
config/detail_at_depth.py builds the paper's situation: its main level (block 4) has lost colour
and texture, and block 1 carries them loudly. Its model, like the main job's, has a 6-block ViT
and a 4-layer GPT. Their pattern, shortcut_pattern('sparse', 2, 'u', 6, 4), is [(3, 1), (1, 3)]:
block 3 into layer 1, block 1 into layer 3. Any list of (vit_block, llm_layer) pairs is a pattern
(SparseCutConfig's `pairs`): a block may feed several layers, a layer may take several blocks.

1. Predict. Which question types should a shortcut from a shallow block help (see the
   README's "What each level of the ViT knows" and "What the sparse shortcuts are worth")?
   Which LLM layer should receive it?
2. Write your pattern in `pattern()` below, at most 4 pairs (each shortcut costs one more
   fusion pass per sample).
3. The check only makes sure your pattern is one the harness can train:
       SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex8_design.py
4. Score it against sparse/'u' with the same ViT, budget and seeds (the sparsecut row of the
   README's table "What the sparse shortcuts are worth"; runs already in out/exp_detail are reused):
       python experiments.py --config_file=config/detail_at_depth.py --out=out/exp_detail \
           --only=sparsecut,custom --seeds=[0,1,2] --max_iters=2000 --jobs=2 --pairs="<your pattern>"
   Seeds differ by several points here: compare means over the three seeds, with their spread.
Going further: does the best pattern depend on the question types you train on
(`--train_args="--question_types=['texture','colour']"`)?
"""


def pattern():
    """-> list of (vit_block, llm_layer) pairs for the main job's model (ViT blocks 0..5, LLM layers 0..3)."""
    raise NotImplementedError("exercise 8: return your list of (vit_block, llm_layer) pairs; "
                              "see the docstring of exercises/ex8_design.py")
