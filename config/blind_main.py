# A candidate for the main job's recipe (docs/FINDINGS.md "What the main job gets wrong"): the main
# job with a main level blind to colour and texture, so that no reader of it can take a colour as
# evidence about shape (a red circle named a square, the pair training showed).
# Stage 0 as config/detail_at_depth.py builds it: colour and texture are read at block 1, and the
# main level must give the same tokens for a view and for that view recoloured (never into a held-out
# pair) and 2x2 low-passed. Colour and texture then reach the LLM through the shortcuts: all four
# levels below the main one, each with a fusion of its own (with two, colour enters too late to find
# an object by it). The stage-0 length is the main job's: 2400 steps cost compositional .1.
# The invariance term is asked on a quarter of each batch: its second pass through the ViT is its
# cost (a step about 1.3x one without it; with every view, about twice).
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/blind_main"
vit_targets = ["shape", "cell", "centre", "colour"]  # low views: what, where, and colour (read at block 1)
vit_detail_level = 1
vit_invariance = 30.0
vit_invariance_share = 0.25
vit_recolour_held_out = False
density = 4
shared_fusion = False
