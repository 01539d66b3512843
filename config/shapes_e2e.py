# End to end from scratch: no stage 0, no feature cache; the ViT trains with the fusion and the
# LLM on the VQA loss. The natural setting on a GPU; on a CPU it is slow and, at this budget,
# learns far less than the staged recipe (docs/FINDINGS.md).
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/e2e"
vit_iters = 0
freeze_vit = False
