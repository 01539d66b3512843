# Stage 0 alone: pretrain the ViT on per-token targets from the scene graph, then stop.
# python train.py config/shapes_vit.py  ->  out/vit/vit.pt, for later runs' vit_init.
# The model sizes and data must match the runs that reuse it (here: those of shapes_cpu.py).
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/vit"
max_iters = 0           # no text stages
