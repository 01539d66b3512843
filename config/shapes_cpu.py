# The main job: a SparseCut model (concat fusion, sparse U-shaped shortcuts) on the shapes data,
# in under ten minutes on a 2-core CPU (README "What to expect"). `python train.py` applies this
# file when no config is given. Why each stage: README "The recipe"; how each setting below was
# chosen, with its runs (on earlier versions, so their digits differ): docs/FINDINGS.md.
out_dir = "out"
device = "cpu"
n_train, n_val, n_test = 10000, 1000, 1000
min_objects, max_objects = 1, 2
question_types = ["colour", "shape", "count", "position", "texture", "absent"]  # absent: half about an empty place
# or a missing object ("nothing"), in a row of its own outside overall (data/README.md)
caption_frac = 0.2
pack = True  # a row per scene, all its questions: 6 answers per row (docs/FINDINGS.md)
curriculum_frac = 0.25
multi_weight = 3.0  # after the curriculum, 2-object scenes (where binding is learned) 3x as often: .915 -> .946 over 4 seeds (docs/FINDINGS.md)
# model: a 6-block ViT (levels 0..3 below the main level 4 are the shortcut sources). Block 5, above
# the main level, is never run nor trained (50k of the ViT's 313k parameters): kept so that the main
# level is the penultimate block, as in LLaVA (main_level=-2).
vit_n_layer, vit_n_head, vit_n_embd = 6, 4, 64
patch_size = 8  # 16 tokens per view (4x4 patches: 64): a 4x cheaper ViT, cheaper text steps, worse shape (docs/FINDINGS.md)
n_layer, n_head, n_embd = 4, 2, 64  # two heads of 32, not four of 16: a cheaper step, not worse over seeds (docs/FINDINGS.md)
gelu = "exact"  # not GPT-2's tanh approximation: a text step ~9% cheaper, not worse over seeds (docs/FINDINGS.md)
fusion = "concat"
shortcut = "sparse"
density = 2
order = "u"
# stage 0 (ViT alone), then frozen + cached; stage 1 merged into stage 2 (our LLM is not pretrained)
vit_iters = 4800  # 2400: per-token shape .97, 4800: .99; with 4000 text steps, the same minutes, better on nine seeds (docs/FINDINGS.md)
vit_targets = ["shape", "cell", "centre"]            # low views: what is here, and where
vit_crop_targets = ["shape", "colour", "texture"]    # crops: what is here, and its fine detail
vit_crops = 0.5
freeze_vit = True
align_iters = 0
max_iters = 4000  # with the 4800-step stage 0; with 2400, 5000 steps were needed (the lookup by description comes late; docs/FINDINGS.md)
batch_size = 32
learning_rate = 2e-3  # 1e-3 bound on one machine and not on another, same seed (docs/FINDINGS.md)
eval_interval = 1000
