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

from checkpoint import (check_device, check_out_dir, claim_out_dir, exit_in_one_line, finite_step, load_checkpoint,
                        provenance, same_model, save_checkpoint, truncate_log, write_json)
from configurator import check_ranges, configure_or_exit
from data.batches import Examples, check_data, load_dataset, to_float
from evaluate import format_table, test_results, val_report
from llm import GPTConfig
from machine import Peak, use_threads
from sparsecut import SparseCut, SparseCutConfig, param_groups
from stage0 import PixelStage0, Stage0, check_targets, pixel_task, scene_task
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
threads = None          # CPU threads; None: as many as are free at start (machine.py), a resume: its own
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
shortcut, density, order = "sparse", 2, "u"  # which levels feed which layers (sparsecut.shortcut_pattern)
gate = False            # beyond the paper: a learned tanh gate per shortcut, 0 at init (Flamingo)
level_norm = False      # beyond the paper: a LayerNorm per ViT level before the shared fusion
shared_fusion = True    # the paper: one fusion for every level; False (beyond it): each shortcut level its own
pairs = []              # your own pattern, [[vit_block, llm_layer], ...]; [] = shortcut/density/order
main_level = -2
# stage 0: ViT pretraining on per-token shape and position targets
vit_iters = 600
vit_batch_size, vit_lr = 64, 2e-3
vit_targets = ["shape", "cell", "centre"]             # per-token targets of stage 0 on low views
vit_crop_targets = ["shape", "colour", "texture"]     # ... and on crops (a crop has no cell/centre)
vit_crops = 0.5         # share of stage-0 views that are high-res crops (the rest: low views)
vit_detail_level = None  # ViT block the colour/texture heads read; None = the main level (stage0.py)
vit_invariance, vit_invariance_share = 0.0, 1.0  # weight of the main level's colour/texture invariance term, share of views it is asked on (stage0.py)
vit_recolour_held_out = True  # the invariance partner may recolour an object into a held-out pair (a red circle); False: never
vit_partner_grad = True  # False: the partner a fixed target, no gradient through its pass (cheaper, and worse: stage0.py)
vit_adversary = 0.0     # weight of the main level's colour/texture confusion term (stage0.py)
vit_silhouettes = 0.0   # share of stage-0 views drawn as flat grey outlines, asked shape and place only (stage0.py)
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
    argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "config", "own_cpu.py" if own else "shapes_cpu.py")] + argv
configure_or_exit(config, argv, "train.py")
globals().update(config)
started = time.time()
exit_in_one_line("train.py", out_dir)  # Ctrl-C, SIGTERM, a full or read-only disk: one line, where to resume from


def bad(msg):  # a setting a user got wrong: one line, before any data or model is made
    sys.exit(f"train.py: {msg}")


check_ranges(config, "train.py", at_least_1="batch_size vit_batch_size gradient_accumulation_steps eval_interval "
             "eval_scenes n_train n_val n_test block_size patch_size n_layer n_head n_embd vit_n_layer vit_n_head vit_n_embd",
             at_least_0="max_iters vit_iters align_iters warmup_iters lr_decay_iters fusion_lr weight_decay grad_clip",
             positive="learning_rate vit_lr multi_weight vit_invariance_share",
             fraction="caption_frac curriculum_frac vit_crops vit_silhouettes vit_invariance_share min_lr_ratio dropout", open_fraction="eval_fraction")
if image_size % 2 or image_size // 2 % patch_size:
    bad(f"image_size={image_size} must be even, and image_size/2 a multiple of patch_size={patch_size} (e.g. 64)")
if init_from not in ("scratch", "resume") and not os.path.isfile(init_from):
    bad(f"init_from={init_from!r} is neither 'scratch', 'resume' nor a checkpoint file")
try:
    check_device(device)
    check_data(config)
    check_targets(vit_targets, vit_crop_targets, vit_detail_level, vit_n_layer, main_level)
    check_out_dir(out_dir)
except ValueError as e:
    bad(e)

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
threads = use_threads(threads, "train.py", say, resume=out_dir if init_from == "resume" else "")
torch.manual_seed(seed + rank)
device_type = "cuda" if device.startswith("cuda") else "cpu"
autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda")
if master:  # one run per out_dir; a new run moves an earlier one aside, never over it
    try:
        out_lock, moved = claim_out_dir(out_dir, new_run=init_from != "resume")
    except ValueError as e:
        bad(e)
    if moved:
        say(f"{out_dir} held an earlier run: moved to {os.path.join(out_dir, 'previous')}/ (init_from='resume' continues a run)")
        init_from, vit_init = (moved.get(os.path.abspath(p), p) for p in (init_from, vit_init))  # read from there

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
peak = Peak(device, batch_size * block_size, n_embd, say)  # says what it measured


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


def load_or_exit(path):
    try:
        return load_checkpoint(path, device)
    except (FileNotFoundError, ValueError) as e:
        bad(e)


def load_weights(module, path, key, prefix=""):
    """module's weights from the checkpoint at path (those under prefix), or one line saying why not."""
    ck = load_or_exit(path)
    try:
        module.load_state_dict({k[len(prefix):]: v for k, v in ck["model"].items() if k.startswith(prefix)})
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        bad(f"{key}={path} holds no weights that fit this model config ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]})")
    return ck


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
        went = finite_step(optimizer, loss, dict(net.named_parameters()))  # 'loss' or 'update' if non-finite
        optimizer.zero_grad(set_to_none=True)
        if went:
            kept = f"{ckpt_path} is unchanged" if os.path.exists(ckpt_path) else "no checkpoint was written"
            sys.exit(f"train.py: {stage} step {it} gave a non-finite {went} "
                     f"(loss {loss.item() * gradient_accumulation_steps:.4g}); stopped, {kept}. Lower the learning rate.")
        dt, t0 = time.time() - t0, time.time()
        lossf = loss.item() * gradient_accumulation_steps
        samples = bsz * gradient_accumulation_steps * world
        mfu = peak.mfu(3 * flops_per_sample() * samples / world, dt)   # fwd + bwd ~ 3x fwd; the step's own
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
                    "stage": stage, "iter": it + 1, "best": best, "config": config, "threads": threads,
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
                 vit_adversary, vit_silhouettes, vit_recolour_held_out, vit_invariance_share, vit_partner_grad)).to(device)
heads = stage0.heads
resume = None
ckpt_path, vit_path = os.path.join(out_dir, "ckpt.pt"), os.path.join(out_dir, "vit.pt")
if init_from == "resume":  # the latest checkpoint: the text stages', or an unfinished stage 0's
    found = [p for p in (ckpt_path, vit_path) if os.path.isfile(p)] or bad(f"init_from='resume' but {out_dir} has no ckpt.pt or vit.pt")
    resume = load_or_exit(found[0])
if resume is not None:
    if not same_model(resume, model_config):
        bad(f"the checkpoint in {out_dir} was trained with another model config; use the same settings or another out_dir")
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
    ck = load_weights(model, init_from, "init_from")
    say(f"initialised from {init_from} ({ck.get('stage', '?')} step {ck.get('iter', '?')})")

resuming_tune = resume is not None and resume["stage"] != "vit"
if master:  # a fresh run starts a fresh loss log; a resumed one keeps it up to where it continues
    truncate_log(os.path.join(out_dir, "log.jsonl"), *((resume["stage"], resume["iter"]) if resume else ("vit", 0)))
if vit_init and not resuming_tune:
    load_weights(model.vit, vit_init, "vit_init", prefix="vit.")
    say(f"ViT from {vit_init} (stage 0 skipped)")
elif vit_iters > 0 and not resuming_tune and (init_from == "scratch" or resume is not None):
    if label_free:
        say("stage 0: no scene graphs in this data, so the ViT pretrains label-free on its images (stage0.py)")
        stage0_loss, stage0_eval = pixel_task(stage0, ds.train, ds.val, train_ix, vit_batch_size, device, say)
    else:
        stage0_loss, stage0_eval = scene_task(stage0, ds.train, ds.val, train_ix, vit_targets, vit_crop_targets,
                                              vit_crops, vit_batch_size, schedule_len("vit", vit_iters), device, say)
    run_stage("vit", stage0, param_groups({"vit": (model.vit, vit_lr), "heads": (heads, vit_lr),
                                           "adversaries": (stage0.adversaries, vit_lr)}, weight_decay), vit_iters,
              vit_batch_size, stage0_loss, vit_path, lambda: model.estimate_flops(0)["vit"] / model.n_views, stage0_eval,
              resume if resume is not None and resume["stage"] == "vit" else None)
    resume = None

if max_iters == 0 and align_iters == 0:  # stage 0 only: a ViT for later runs' vit_init
    say("no text stages (max_iters=0): stopping" + (f"; the ViT is in {vit_path}" if os.path.exists(vit_path) else ""))
    sys.exit(0)

# the frozen ViT's levels, computed once: later steps cost only the fusion and the LLM
feats = None
if freeze_vit:
    model.vit.requires_grad_(False)
    feats = model.cache_levels(ds.train.images[train_ix], device, progress=master)  # each (M, V, N, Cv) fp16
    say(f"cached ViT levels {model.levels}: {sum(v.numel() * 2 for v in feats.values()) / 2**20:.0f} MiB (fp16)")
ran = []  # each micro-batch's forward FLOPs per row, at its own text length (caption or not); step_flops empties it


def text_loss(net, sampler, it, captions_only=False):
    one_object = it < curriculum_frac * schedule_len("tune", max_iters)  # a share of the schedule
    idx, tgt, scene, seg = examples.draw(batch_size, sampler, one_object, multi_weight,
                                         pack and not captions_only, captions_only)
    ran.append(model.estimate_flops(idx.shape[1]))
    f = None if feats is None else {b: v[scene].to(device).float() for b, v in feats.items()}  # each (B, V, N, Cv)
    images = None if feats is not None else to_float(ds.train.images[train_ix[scene.numpy()]]).to(device)
    return net(images, idx.to(device), tgt.to(device), feats=f, segments=None if seg is None else seg.to(device))[1]


try:
    val_examples = Examples(tok, ds.val.records[:eval_scenes], question_types, caption_frac, examples.max_text_len)
except ValueError as e:
    bad(f"validation data: {e}")


def val_eval():  # the val loss and accuracy per type on the first eval_scenes scenes; returns overall
    return val_report(model, tok, val_examples, ds.val, question_types, device, eval_scenes, say)


step_flops = lambda: sum(f["total"] - freeze_vit * f["vit"] for f in [ran.pop() for _ in range(len(ran))]) / gradient_accumulation_steps
lr_fusion = fusion_lr or learning_rate  # 0: the LLM's
if align_iters and (resume is None or resume["stage"] == "align"):
    # stage 1: only the fusion learns to speak the LLM's language (run_stage freezes the rest)
    fusions = {"fusion": (model.fusion, lr_fusion), "level_fusions": (model.level_fusions, lr_fusion)}
    run_stage("align", model, param_groups(fusions, weight_decay), align_iters,
              batch_size, lambda n, s, it: text_loss(n, s, it, captions_only=True), ckpt_path, step_flops, val_eval, resume)
    resume = None
if not freeze_vit:
    for b, block in enumerate(model.vit.blocks):  # above the deepest tap: never run, never a gradient
        block.requires_grad_(b <= max(model.levels))
modules = {"fusion": (model.fusion, lr_fusion), "llm": (model.llm, learning_rate), "level_norms": (model.level_norms, lr_fusion),
           "level_fusions": (model.level_fusions, lr_fusion), "vit": (None if freeze_vit else model.vit, vit_lr),
           "gates": (model.gates, learning_rate)}  # None: the model has no such part, or it is frozen
run_stage("tune", model, param_groups(modules, weight_decay), max_iters, batch_size, text_loss, ckpt_path, step_flops, val_eval, resume)

# final test evaluation --------------------------------------------------------------------------
if master:
    results = test_results(model, tok, ds, question_types, device)  # the test table, held-out wordings and pairs
    print(format_table(results))
    results["run"] = provenance("train.py", config, peak.flops, started)  # docs/tables.py checks and tabulates it
    write_json(os.path.join(out_dir, "results.json"), results)
if ddp:
    torch.distributed.destroy_process_group()
