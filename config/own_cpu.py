# Your own data (a LLaVA JSON): `python train.py --data=train.json --image_root=images` applies this
# file when no config is given. The shapes recipe's model, with a label-free stage 0 (stage0.py) and
# fewer text steps, so that ~1.5k images train within 10 minutes on a 2-core CPU (README "Your own data").
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/own_run"
# as this recipe was first measured (the shapes recipe has since moved to 8x8 patches, packed rows,
# two LLM heads, exact GELU and twice the learning rate; docs/FINDINGS.md)
patch_size = 4
pack = False
n_head = 4
gelu = "tanh"
learning_rate = 1e-3
vit_iters = 300
max_iters = 1500
eval_interval = 500
