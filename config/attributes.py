# The recipe that names the shape of a red circle it never saw (issue: attributes, not combinations):
# config/blind_main.py with two changes. Its numbers and their price, against the main job's, over
# eight seeds chosen before running: docs/FINDINGS.md "What the main job gets wrong" (table
# `attributes`). Not the main job's recipe: on the 2-core CPU of the results it takes about 1.5x the
# main job's time, over the 10 minutes the main job keeps to.
# - the invariance term on every view of stage 0, not on a quarter of each batch: a main level with
#   cleaner shape evidence. Its second pass through the ViT is the price: stage 0 about twice the main job's.
# - two "nothing there" questions a scene: the same images (so the same stage-0 ViT), one more
#   question a row. A main level blind to colour must find "the cyan object" through a shortcut,
#   and one question a scene teaches that too rarely.
import os
exec(open(os.path.join(os.path.dirname(__file__), "blind_main.py")).read())
out_dir = "out/attributes"
data_dir = "data/shapes_abs2"  # other questions than the main job's data/shapes: a folder of their own
question_types = ["colour", "shape", "count", "position", "texture", "absent", "absent"]
vit_invariance_share = 1.0
