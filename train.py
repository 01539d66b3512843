"""
Train a SparseCut model. One process:         python train.py [config/x.py] [--key=value ...]
                          DDP (CPU or GPUs):  torchrun --nproc_per_node=2 train.py ...

The staged recipe (see README): stage 0 pretrains the ViT alone on dense per-token targets
from the scene graph (your own data has none: its own pixels instead); the ViT is then frozen
and its levels cached once; the fusion and the LLM train on VQA (+ captions).
`freeze_vit=False` trains everything end to end instead.
"""
import json
import math
import os
import sys
import time
from dataclasses import asdict

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from checkpoint import all_finite, check_device, load_checkpoint, provenance, save_checkpoint, write_json
from configurator import configure_or_exit
from data.batches import Examples, load_dataset, to_float
from fusion import make_views as views_of
from evaluate import evaluate, format_table, generalisation, measure_peak_flops
from llm import GPTConfig
from sparsecut import SparseCut, SparseCutConfig
from stage0 import PixelStage0, Stage0, check_targets, pick_views, recolour_lowpass, view_targets
from vit import ViTConfig

# -----------------------------------------------------------------------------
# defaults. With no config file given, config/shapes_cpu.py (the main job) is applied over them:
# a default it sets (n_embd, max_iters, ...) applies only under another config file.
# `python train.py --help` marks each default it overrides.
out_dir = "out"
init_from = "scratch"   # 'scratch' | 'resume' (out_dir/ckpt.pt, or an unfinished stage 0) | path to a ckpt.pt
vit_init = ""           # a stage-0 checkpoint (out_dir/vit.pt of another run) to reuse instead of stage 0
eval_interval = 500     # steps between evaluations and checkpoints
eval_scenes = 100       # val scenes per periodic evaluation (the final test uses all)
seed = 1337
device = "cuda" if torch.cuda.is_available() else "cpu"
compile = False
# data
data = "shapes"         # 'shapes' (generated into data_dir) or a LLaVA-format JSON path
data_dir = "data/shapes"
data_seed = 0
image_root = ""         # image folder of a LLaVA-format dataset
eval_data = ""          # LLaVA JSON to test on; '' holds out eval_fraction of `data`
eval_fraction = 0.1
n_train, n_val, n_test = 10000, 1000, 1000
min_objects, max_objects = 1, 2
question_types = ["colour", "shape", "count", "position", "texture"]
caption_frac = 0.2      # share of training samples that are captions (with pack: of steps whose rows also carry theirs)
pack = False            # one row per scene with all its questions, each seeing only the image and itself
curriculum_frac = 0.25  # the first share of steps sees one-object scenes only
multi_weight = 1.0      # after the curriculum, questions about 2+ object scenes are drawn this many times as often
# model
image_size = 64         # full resolution 2S; the ViT's views are S = image_size // 2
patch_size = 4
vit_n_layer, vit_n_head, vit_n_embd = 6, 4, 64
n_layer, n_head, n_embd = 4, 4, 128
block_size = 128
dropout = 0.0
prefix_bidirectional = False  # image tokens attend to each other in the LLM
gelu = "tanh"           # the LLM's GELU: 'tanh' (GPT-2's approximation) or 'exact' (cheaper on CPU)
fusion = "concat"
shortcut = "sparse"
density = 2
order = "u"
gate = False            # beyond the paper: a learned tanh gate per shortcut, 0 at init (Flamingo)
level_norm = False      # beyond the paper: a LayerNorm per ViT level before the shared fusion
shared_fusion = True    # the paper: one fusion for every level; False (beyond it): each shortcut level its own
pairs = []              # your own pattern, [[vit_block, llm_layer], ...]; [] = shortcut/density/order
main_level = -2
# stage 0: ViT pretraining on per-token shape and position targets
vit_iters = 600
vit_batch_size = 64
vit_lr = 2e-3
vit_targets = ["shape", "cell", "centre"]             # per-token targets of stage 0 on low views
vit_crop_targets = ["shape", "colour", "texture"]     # ... and on crops (a crop has no cell/centre)
vit_crops = 0.5         # share of stage-0 views that are high-res crops (the rest: low views)
vit_detail_level = None  # ViT block the colour/texture heads read; None = the main level (stage0.py)
vit_invariance = 0.0    # weight of the main level's colour/texture invariance term (stage0.py)
vit_adversary = 0.0     # weight of the main level's colour/texture confusion term (stage0.py)
vit_mask = 0.25         # own data (no scene graph): share of low-view tokens the label-free stage 0 blanks
freeze_vit = True       # False: no cache, the ViT trains with everything (end to end)
# stage 1 (alignment: fusion only, captions) and stage 2 (fusion + LLM, VQA + captions)
align_iters = 0
max_iters = 3000
batch_size = 32
gradient_accumulation_steps = 1
learning_rate = 1e-3    # LLM (and fusion unless fusion_lr is set)
fusion_lr = 0.0         # 0 = learning_rate
weight_decay = 0.1
beta1, beta2 = 0.9, 0.99
grad_clip = 1.0
warmup_iters = 100
lr_decay_iters = 0      # 0 = the stage's number of steps
min_lr_ratio = 0.1
# -----------------------------------------------------------------------------
config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, float, str, bool, list, type(None))}
argv = sys.argv[1:]
if not any(not a.startswith("-") for a in argv):  # no config file: the CPU recipe for shapes, or for your data
    own = any(a.startswith("--data=") and a[7:].strip("'\"") != "shapes" for a in argv)
    recipe = "own_cpu.py" if own else "shapes_cpu.py"
    argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "config", recipe)] + argv
configure_or_exit(config, argv, "train.py")
globals().update(config)
started = time.time()


def bad(msg):  # a setting a user got wrong: one line, before any data or model is made
    sys.exit(f"train.py: {msg}")


for k in ("batch_size", "vit_batch_size", "gradient_accumulation_steps", "eval_interval", "eval_scenes",
          "n_train", "n_val", "n_test", "block_size", "patch_size"):
    if config[k] < 1:
        bad(f"{k}={config[k]} must be >= 1")
for k in ("max_iters", "vit_iters", "align_iters", "warmup_iters", "lr_decay_iters", "fusion_lr", "weight_decay", "grad_clip"):
    if not config[k] >= 0:
        bad(f"{k}={config[k]} must be >= 0")
for k in ("learning_rate", "vit_lr", "multi_weight"):
    if not config[k] > 0:
        bad(f"{k}={config[k]} must be > 0")
for k in ("caption_frac", "curriculum_frac", "vit_crops", "min_lr_ratio", "dropout", "eval_fraction"):
    if not 0 <= config[k] <= 1 or (k == "eval_fraction" and config[k] in (0, 1)):
        bad(f"{k}={config[k]} must be between 0 and 1" + (" (exclusive)" if k == "eval_fraction" else ""))
if image_size % 2 or image_size // 2 % patch_size:
    bad(f"image_size={image_size} must be even, and image_size/2 a multiple of patch_size={patch_size} (e.g. 64)")
if init_from not in ("scratch", "resume") and not os.path.isfile(init_from):
    bad(f"init_from={init_from!r} is neither 'scratch', 'resume' nor a checkpoint file")
try:
    check_device(device)
    check_targets(vit_targets, vit_crop_targets, vit_detail_level, vit_n_layer, main_level)
except ValueError as e:
    bad(e)
_up = os.path.abspath(out_dir)
while not os.path.exists(_up):  # the first part of out_dir that exists must be a folder
    _up = os.path.dirname(_up)
if not os.path.isdir(_up):
    bad(f"out_dir={out_dir!r} cannot be made: {_up} is a file, not a folder")

# DDP: one process per device; each rank trains on its own shard of the scenes
ddp = int(os.environ.get("RANK", -1)) != -1
rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
if ddp:
    torch.distributed.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
master = rank == 0
say = print if master else (lambda *a, **k: None)
torch.manual_seed(seed + rank)
device_type = "cuda" if device.startswith("cuda") else "cpu"
autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda")
os.makedirs(out_dir, exist_ok=True)
for name in ("ckpt.pt.tmp", "vit.pt.tmp"):  # left by a killed save: never a checkpoint
    if master and os.path.exists(os.path.join(out_dir, name)):
        os.remove(os.path.join(out_dir, name))

# data ------------------------------------------------------------------------
if ddp and not master:
    torch.distributed.barrier()         # rank 0 generates the data alone; the others wait, then read it
try:
    ds = load_dataset(config, print)    # train/val/test images, records, tokenizer, masks (any rank that generates says so)
except (ValueError, FileNotFoundError) as e:
    bad(e)
if ddp and master:
    torch.distributed.barrier()
tok = ds.tok
train_ix = np.arange(rank, len(ds.train.images), world)   # this rank's shard

# model -----------------------------------------------------------------------
try:
    model_config = SparseCutConfig(
        vit=ViTConfig(image_size // 2, patch_size, vit_n_layer, vit_n_head, vit_n_embd, dropout),
        llm=GPTConfig(block_size, tok.n_vocab, n_layer, n_head, n_embd, dropout,
                      prefix_bidirectional=prefix_bidirectional, gelu=gelu),
        fusion=fusion, main_level=main_level, shortcut=shortcut, density=density, order=order, gate=gate,
        level_norm=level_norm, shared_fusion=shared_fusion, pairs=pairs or None)
except ValueError as e:
    sys.exit(f"train.py: {e}")
model = SparseCut(model_config).to(device)
try:
    examples = Examples(tok, [ds.train.records[i] for i in train_ix], question_types, caption_frac,
                        block_size - model.n_image_tokens)
except ValueError as e:
    bad(e)
say(model.describe())
peak = measure_peak_flops(device, batch_size * block_size, n_embd)
say(f"matmul peak on this machine: {peak / 1e9:.0f} GFLOP/s (MFU is measured against it)")


kept_schedule = {}  # stage -> steps its schedule spans, when a resume keeps the checkpoint's (below)


def schedule_len(stage, iters):
    """Steps the LR schedule (and the curriculum) of a stage spans."""
    return lr_decay_iters or kept_schedule.get(stage) or iters


def lr_mult(it, decay):
    """Linear warmup, then cosine down to min_lr_ratio at step `decay`."""
    if it < warmup_iters:
        return (it + 1) / warmup_iters
    t = min(1.0, (it - warmup_iters) / max(1, decay - warmup_iters))
    return min_lr_ratio + 0.5 * (1 - min_lr_ratio) * (1 + math.cos(math.pi * t))


def param_groups(modules):
    """modules: {name: (module, lr)} -> AdamW groups; weight decay on 2-D weights only."""
    groups = []
    for name, (module, lr) in modules.items():
        params = [p for p in ([module] if isinstance(module, torch.nn.Parameter) else module.parameters())
                  if p.requires_grad]
        groups += [{"params": [p for p in params if p.dim() >= 2], "lr": lr, "base_lr": lr,
                    "weight_decay": weight_decay, "name": name},
                   {"params": [p for p in params if p.dim() < 2], "lr": lr, "base_lr": lr,
                    "weight_decay": 0.0, "name": name}]
    return [g for g in groups if g["params"]]


def load_or_exit(path):
    try:
        return load_checkpoint(path, device)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"train.py: {e}")


def run_stage(stage, net, groups, iters, bsz, batch_loss, ckpt_path, flops_per_sample, evaluate_fn, resume=None):
    """The training loop shared by every stage: AdamW, warmup + cosine, accumulation, clipping,
    periodic eval + atomic checkpoint with everything needed to continue exactly."""
    optimizer = torch.optim.AdamW(groups, betas=(beta1, beta2))
    # only what this optimizer steps may collect gradients: the rest would pile up (no one zeroes
    # them) into the clip norm and the next stage's first step, and DDP would wait for them
    trained = {id(p) for g in groups for p in g["params"]}
    wanted = {p: p.requires_grad for p in net.parameters()}
    for p in wanted:
        p.requires_grad_(id(p) in trained)
    sampler = torch.Generator().manual_seed(seed * 1000 + rank)   # the data position
    start, best = 0, -1.0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        sampler.set_state(resume["rng"]["sampler"][rank])
        torch.set_rng_state(resume["rng"]["torch"])
        start, best = resume["iter"], resume["best"]
    ddp_net = DDP(net) if ddp else net
    step_fn = torch.compile(ddp_net) if compile else ddp_net
    log = open(os.path.join(out_dir, "log.jsonl"), "a") if master else None
    bar = tqdm(range(start, iters), desc=stage, disable=not master, initial=start, total=iters,
               dynamic_ncols=True)
    t0 = time.time()
    for it in bar:
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * lr_mult(it, schedule_len(stage, iters))
        for micro in range(gradient_accumulation_steps):
            if ddp:  # sync gradients on the last micro-step only
                ddp_net.require_backward_grad_sync = micro == gradient_accumulation_steps - 1
            with autocast:
                loss = batch_loss(step_fn, sampler, it) / gradient_accumulation_steps
            loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        if torch.isfinite(loss):
            optimizer.step()  # a finite but huge loss can still make a non-finite update: checked next
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss) or not all_finite(dict(net.named_parameters())):
            kept = f"{ckpt_path} is unchanged" if os.path.exists(ckpt_path) else "no checkpoint was written"
            sys.exit(f"train.py: {stage} step {it} gave a non-finite {'loss' if not torch.isfinite(loss) else 'update'} "
                     f"(loss {loss.item() * gradient_accumulation_steps:.4g}); stopped, {kept}. Lower the learning rate.")
        dt, t0 = time.time() - t0, time.time()
        lossf = loss.item() * gradient_accumulation_steps
        samples = bsz * gradient_accumulation_steps * world
        mfu = 3 * flops_per_sample * samples / world / dt / peak   # fwd + bwd ~ 3x fwd
        bar.set_postfix(loss=f"{lossf:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}",
                        sps=f"{samples / dt:.0f}", mfu=f"{100 * mfu:.1f}%")
        if master:
            log.write(json.dumps({"stage": stage, "iter": it, "loss": round(lossf, 6)}) + "\n")
        if (it + 1) % eval_interval == 0 or it + 1 == iters:
            samplers = [sampler.get_state()]
            if ddp:  # every rank's data position, so that a resumed DDP run continues exactly
                samplers = [None] * world
                torch.distributed.all_gather_object(samplers, sampler.get_state())
            if master:
                metric = evaluate_fn()
                best = max(best, metric)
                log.flush()
                save_checkpoint(ckpt_path, {
                    "stage": stage, "iter": it + 1, "best": best, "config": config,
                    "model_config": asdict(model_config), "model": model.state_dict(),
                    "heads": heads.state_dict(), "adversaries": stage0.adversaries.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": {"sampler": samplers, "torch": torch.get_rng_state()}})
            if ddp:
                torch.distributed.barrier()
            t0 = time.time()
    if log:
        log.close()
    for p, r in wanted.items():
        p.requires_grad_(r)


# stage 0: pretrain the ViT alone (stage0.py: the targets, and why) --------------------------------
label_free = ds.train.masks is None  # your own data: no scene graph, so stage 0 predicts pixels (stage0.py)
stage0 = (PixelStage0(model.vit, main_level, vit_mask) if label_free else
          Stage0(model.vit, vit_targets + vit_crop_targets, main_level, vit_detail_level, vit_invariance,
                 vit_adversary)).to(device)
heads = stage0.heads
resume = None
ckpt_path, vit_path = os.path.join(out_dir, "ckpt.pt"), os.path.join(out_dir, "vit.pt")
if init_from == "resume" and os.path.isfile(ckpt_path):
    resume = load_or_exit(ckpt_path)
elif init_from == "resume" and os.path.isfile(vit_path):
    resume = load_or_exit(vit_path)
elif init_from == "resume":
    sys.exit(f"train.py: init_from='resume' but {out_dir} has no ckpt.pt or vit.pt")
if resume is not None:
    try:  # a setting added since the checkpoint was written takes its default, which is the model it was
        same = asdict(SparseCutConfig(**resume["model_config"])) == asdict(model_config)
    except (TypeError, ValueError):
        same = False
    if not same:
        sys.exit(f"train.py: the checkpoint in {out_dir} was trained with another model config; "
                 "use the same settings or another out_dir")
    model.load_state_dict(resume["model"])
    heads.load_state_dict(resume["heads"])
    stage0.adversaries.load_state_dict(resume.get("adversaries", {}))
    say(f"resuming {resume['stage']} at step {resume['iter']}")
    key = {"vit": "vit_iters", "align": "align_iters", "tune": "max_iters"}[resume["stage"]]
    planned = resume["config"].get("lr_decay_iters") or resume["config"].get(key, config[key])
    if not lr_decay_iters and planned != config[key]:  # the stage now ends elsewhere: its schedule does not move
        kept_schedule[resume["stage"]] = planned
        say(f"{key}={config[key]}, but the checkpoint's run planned {planned} steps: the LR schedule and curriculum "
            f"keep their {planned}-step length (set --lr_decay_iters={config[key]} to stretch them)")
elif init_from != "scratch":
    ck = load_or_exit(init_from)
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, KeyError) as e:
        sys.exit(f"train.py: {init_from} does not fit this model config ({str(e).splitlines()[0]})")
    say(f"initialised from {init_from} ({ck['stage']} step {ck['iter']})")

resuming_tune = resume is not None and resume["stage"] != "vit"
if master and resume is None:  # a fresh run starts a fresh loss log; a resumed one appends to it
    open(os.path.join(out_dir, "log.jsonl"), "w").close()
if vit_init and not resuming_tune:
    ck = load_or_exit(vit_init)
    try:
        model.vit.load_state_dict({k[4:]: v for k, v in ck["model"].items() if k.startswith("vit.")})
    except RuntimeError as e:
        sys.exit(f"train.py: vit_init={vit_init} does not fit this ViT config ({str(e).splitlines()[0]})")
    say(f"ViT from {vit_init} (stage 0 skipped)")
elif vit_iters > 0 and not resuming_tune and (init_from == "scratch" or resume is not None):
    if label_free:
        say("stage 0: no scene graphs in this data, so the ViT pretrains label-free on its images (each low-view "
            "token predicts the full-resolution pixels it covers; stage0.py), then is frozen and cached: text "
            "steps ~5x cheaper than end to end (README: Your own data); vit_init=<a vit.pt> or vit_iters=0 "
            "to choose otherwise")
        val_images0 = to_float(ds.val.images[:200])

        def stage0_loss(net, sampler, it):
            ix = torch.randint(len(train_ix), (vit_batch_size,), generator=sampler)
            return net(to_float(ds.train.images[train_ix[ix.numpy()]]).to(device), sampler)[1]

        @torch.no_grad()
        def stage0_eval():
            """R^2 of the full-resolution pixels predicted from the low views of 200 val images."""
            stage0.eval()
            r2 = 1 - stage0(val_images0.to(device))[1].item()
            stage0.train()
            say(f"val pixel R^2 {r2:.3f}")
            return r2
    else:
        n_side = model_config.vit.image_size // patch_size
        train_records = [ds.train.records[i] for i in train_ix]
        targets0 = view_targets(ds.train.masks[train_ix], train_records, n_side, vit_targets, vit_crop_targets)
        val0 = view_targets(ds.val.masks[:200], ds.val.records[:200], n_side, vit_targets, vit_crop_targets)
        val_low, val_crops = views_of(to_float(ds.val.images[:200]))
        val_views0 = torch.cat([val_low, val_crops.flatten(0, 1)])                       # (200*5, 3, S, S)

        def stage0_loss(net, sampler, it):
            ix = torch.randint(len(train_ix), (vit_batch_size,), generator=sampler)
            view = torch.where(torch.rand(vit_batch_size, generator=sampler) < vit_crops,
                               torch.randint(1, 5, (vit_batch_size,), generator=sampler), 0)  # 0 low, 1..4 crops
            images = ds.train.images[train_ix[ix.numpy()]]
            x = pick_views(to_float(images), view)                                          # (B, 3, S, S)
            partner = None
            if vit_invariance:
                rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=sampler)))
                partner = pick_views(to_float(recolour_lowpass(images, ds.train.masks[train_ix[ix.numpy()]],
                                                               [train_records[i] for i in ix.tolist()], rng)), view)
                partner = partner.to(device)
            y = {k: v[ix, view].to(device) for k, v in targets0.items()}                     # each (B, N)
            # the heads first learn what is where; then the main level is asked, ever more, to drop the
            # detail (at full weight from the start, 2 of 3 seeds stalled for half of stage 0)
            return net(x.to(device), y, partner, ramp=min(1.0, it / (0.5 * schedule_len("vit", vit_iters))))[1]

        @torch.no_grad()
        def stage0_eval():
            """Per-token accuracy of each head on the 5 views of 200 val scenes (where it applies)."""
            stage0.eval()
            out = stage0(val_views0.to(device))[0]
            stage0.train()
            acc = {}
            for k in out:
                y = torch.cat([val0[k][:, 0], val0[k][:, 1:].flatten(0, 1)])                      # (200*5, N)
                acc[k] = (out[k].argmax(-1).cpu() == y)[y >= 0].float().mean().item()
            say("val per-token accuracy: " + " ".join(f"{k} {a:.3f}" for k, a in acc.items()))
            return sum(acc.values()) / len(acc)

    run_stage("vit", stage0, param_groups({"vit": (model.vit, vit_lr), "heads": (heads, vit_lr),
                                           "adversaries": (stage0.adversaries, vit_lr)}), vit_iters,
              vit_batch_size, stage0_loss, vit_path, model.estimate_flops(0)["vit"] / model.n_views, stage0_eval,
              resume if resume is not None and resume["stage"] == "vit" else None)
    resume = None

if max_iters == 0 and align_iters == 0:  # stage 0 only: a ViT for later runs' vit_init
    say("no text stages (max_iters=0): stopping" + (f"; the ViT is in {vit_path}" if os.path.exists(vit_path) else ""))
    if ddp:
        torch.distributed.destroy_process_group()
    sys.exit(0)

# the frozen ViT's levels, computed once: later steps cost only the fusion and the LLM
feats = None
if freeze_vit:
    model.vit.requires_grad_(False)
    model.vit.eval()
    with torch.no_grad():
        feats = {b: [] for b in model.levels}
        for i in tqdm(range(0, len(train_ix), 64), desc="cache", disable=not master):
            f = model.encode(to_float(ds.train.images[train_ix[i:i + 64]]).to(device))
            for b in model.levels:
                feats[b].append(f[b].half().cpu())
        feats = {b: torch.cat(v) for b, v in feats.items()}                # each (M, V, N, Cv)
    say(f"cached ViT levels {model.levels}: {sum(v.numel() * 2 for v in feats.values()) / 2**20:.0f} MiB (fp16)")


def text_loss(net, sampler, it, captions_only=False):
    one_object = it < curriculum_frac * schedule_len("tune", max_iters)  # a share of the schedule
    seg = None
    if pack and not captions_only:  # the image tokens, most of a row, computed once for all its questions
        scene = examples.sample_scenes(batch_size, sampler, one_object=one_object, multi_weight=multi_weight)
        # all rows of a step carry their caption (~22 tokens), or none does: rows of a step end at about
        # the same length, so less padding than a caption in some rows (14% fewer tokens per step, image included)
        with_caption = (torch.rand(1, generator=sampler) < caption_frac).expand(batch_size)
        idx, tgt, seg = examples.pack(scene, with_caption)
        seg = seg.to(device)
    else:
        ix = examples.sample(batch_size, sampler, one_object=one_object, captions_only=captions_only,
                             multi_weight=multi_weight)
        idx, tgt, scene = examples.batch(ix)
    if feats is not None:
        f = {b: v[scene].to(device).float() for b, v in feats.items()}
        return net(None, idx.to(device), tgt.to(device), feats=f, segments=seg)[1]
    return net(to_float(ds.train.images[train_ix[scene.numpy()]]).to(device), idx.to(device), tgt.to(device),
               segments=seg)[1]


try:
    val_examples = Examples(tok, ds.val.records[:eval_scenes], question_types, caption_frac, examples.max_text_len)
except ValueError as e:
    bad(f"validation data: {e}")


@torch.no_grad()
def val_eval():
    """val loss (teacher forcing) and greedy accuracy per type on the first eval_scenes scenes."""
    model.eval()
    losses = []
    for i in range(0, len(val_examples.scene), 64):
        idx, tgt, scene = val_examples.batch(torch.arange(i, min(i + 64, len(val_examples.scene))))
        images = to_float(ds.val.images[scene.numpy()]).to(device)
        losses.append(model(images, idx.to(device), tgt.to(device))[1].item())
    model.train()
    res = evaluate(model, tok, ds.val, question_types, device, limit=eval_scenes, captions=32)
    f1 = "" if res["caption_f1"] is None else f" caption_f1 {res['caption_f1']:.2f}"
    say(f"\nval loss {sum(losses) / len(losses):.3f} | " +
        " ".join(f"{k} {v:.2f}" for k, v in res["vqa"].items()) + f1)
    return res["vqa"]["overall"]


flops_text = model.estimate_flops(max(int(examples.len[ex].sum()) for ex in examples.examples_of) if pack
                                  else examples.max_len)  # the longest row
step_flops = flops_text["fusion"] + flops_text["llm"] + (0 if freeze_vit else flops_text["vit"])
if align_iters and (resume is None or resume["stage"] == "align"):
    # stage 1: only the fusion learns to speak the LLM's language (run_stage freezes the rest)
    fusions = {"fusion": (model.fusion, fusion_lr or learning_rate)}
    if model.level_fusions is not None:
        fusions["level_fusions"] = (model.level_fusions, fusion_lr or learning_rate)
    run_stage("align", model, param_groups(fusions), align_iters,
              batch_size, lambda n, s, it: text_loss(n, s, it, captions_only=True), ckpt_path, step_flops, val_eval, resume)
    resume = None
modules = {"fusion": (model.fusion, fusion_lr or learning_rate), "llm": (model.llm, learning_rate)}
for name in ("level_norms", "level_fusions"):
    if getattr(model, name) is not None:
        modules[name] = (getattr(model, name), fusion_lr or learning_rate)
if not freeze_vit:
    for b, block in enumerate(model.vit.blocks):  # above the deepest tap: never run, never a gradient
        block.requires_grad_(b <= max(model.levels))
    modules["vit"] = (model.vit, vit_lr)
if model.gates is not None:
    modules["gates"] = (model.gates, learning_rate)
run_stage("tune", model, param_groups(modules), max_iters, batch_size, text_loss, ckpt_path, step_flops, val_eval, resume)

# final test evaluation --------------------------------------------------------------------------
if master:
    t0 = time.time()
    results = evaluate(model, tok, ds.test, question_types, device, limit=None, captions=None)
    results.update(generalisation(model, tok, ds, question_types, device))  # "paraphrase", "compositional"
    results["eval_seconds"] = round(time.time() - t0, 1)
    if model.gates is not None:  # which shortcuts the model chose to use
        results["gates"] = {f"{b}->{l}": round(math.tanh(g), 3) for (b, l), g in zip(model.shortcuts, model.gates.tolist())}
        say("learned gates tanh(g), ViT block->LLM layer: " + " ".join(f"{k} {v:+.3f}" for k, v in results["gates"].items()))
    print(format_table(results))
    results["run"] = provenance("train.py", config, peak, started)  # docs/tables.py checks and tabulates it
    write_json(os.path.join(out_dir, "results.json"), results)
if ddp:
    torch.distributed.destroy_process_group()
