# A trial: the main job with a main level blind to colour and texture (docs/FINDINGS.md "What the
# main job gets wrong"), so that no reader of it can take a colour as evidence about shape.
# Stage 0 as config/detail_at_depth.py builds it: colour and texture are read at block 1, and the
# main level must give the same tokens for a view and for that view recoloured (never into a held-out
# pair) and 2x2 low-passed. Colour and texture then reach the LLM through the shortcuts: all four
# levels below the main one, each with a fusion of its own.
# A stage-0 step with the invariance costs about twice one without: 2400 steps, to stay within 10
# minutes. Too few: compositional .78 on seeds 1, 2, 4 (docs/FINDINGS.md).
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/blind_main"
vit_targets = ["shape", "cell", "centre", "colour"]  # low views: what, where, and colour (read at block 1)
vit_detail_level = 1
vit_invariance = 30.0
vit_recolour_held_out = False
vit_iters = 2400
density = 4
shared_fusion = False
