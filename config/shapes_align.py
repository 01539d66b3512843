# Stage 1 alone: alignment. The frozen stage-0 ViT (from config/shapes_vit.py) and a fresh LLM;
# only the fusion learns, on captions, then stop. python train.py config/shapes_align.py
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/align"
vit_init = "out/vit/vit.pt"
align_iters = 1000
max_iters = 0
