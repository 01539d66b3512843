# Stage 2 alone: instruction tuning (fusion + LLM on VQA and captions), from stage 1's checkpoint.
# python train.py config/shapes_vit.py && python train.py config/shapes_align.py && python train.py config/shapes_tune.py
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/tune"
init_from = "out/align/ckpt.pt"
