"""
Checkpoints: written atomically, read safely, with one-line errors a user can act on.
"""
import json
import os
import platform
import subprocess
import sys
import time

import torch

from data.shapes.prepare import write_atomic
from sparsecut import SparseCut, SparseCutConfig


def check_device(device):
    """A one-line ValueError unless torch can use `device` here ('cpu', 'cuda', 'cuda:1', 'mps')."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"device={device!r} is not a device name: use 'cpu', 'cuda' or 'cuda:N'") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but this machine has no CUDA GPU that torch can use: use --device=cpu")
    if kind == "cuda" and (torch.device(device).index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} but this machine has {torch.cuda.device_count()} GPU(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} is not available here: use --device=cpu")


def all_finite(state_dict):
    """True if every floating-point tensor of a state dict is free of NaN and inf."""
    flags = [torch.isfinite(v).all() for v in state_dict.values() if torch.is_tensor(v) and v.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True  # one device sync, not one per tensor


def write_json(path, obj):
    """A result file others read (results.json, a sweep's table, bench/probe JSON), written
    atomically: a kill at any moment leaves the previous file or the new one, never half of one."""
    write_atomic(path, lambda f: f.write((json.dumps(obj, indent=1) + "\n").encode()))


def provenance(script, config, peak_flops=None, started=None):
    """What a result file records so that its table can be regenerated and checked (docs/tables.py):
    the command, the commit, the render VERSION and every setting, the machine and its matmul peak."""
    from data.shapes.render import VERSION
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
        commit = git("rev-parse", "--short", "HEAD") or "unknown"
        commit += "+changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    except (OSError, subprocess.SubprocessError):  # no git, or not a clone
        commit = "unknown"
    try:  # the CPU's name: timings and even float results differ between CPUs
        with open("/proc/cpuinfo") as f:
            machine = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        machine = platform.processor() or platform.machine()
    return {"command": " ".join(["python", script] + sys.argv[1:]), "commit": commit, "render_version": VERSION,
            "config": config, "threads": torch.get_num_threads(), "machine": f"{machine}, {os.cpu_count()} cores",
            "peak_gflops": None if peak_flops is None else round(peak_flops / 1e9, 1),
            "seconds": None if started is None else round(time.time() - started, 1),
            "date": time.strftime("%Y-%m-%d")}


def save_checkpoint(path, state):
    """torch.save to path + '.tmp', fsync, then an atomic rename: a crash at any point leaves the
    old file whole (without the fsync, a power cut after the rename could leave an empty file)."""
    if "model" in state and not all_finite(state["model"]):
        raise ValueError(f"refusing to write non-finite weights to {path}")  # a bug upstream: never happens
    tmp = path + ".tmp"
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the file's data, whichever descriptor asks
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):  # the half-written file; a SIGKILL leaves one, which the next save overwrites
            os.remove(tmp)
        raise


def load_checkpoint(path, device="cpu"):
    """The checkpoint dict, every tensor on the CPU: torch can set RNG states only from CPU tensors
    (so map_location=device would break a resume on CUDA), and load_state_dict copies the weights
    and the optimizer state to wherever the model is. `device` is checked first, so that a missing
    GPU is not blamed on the file. weights_only=True: loading never runs code from the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found: train first (python train.py) or fix the path")
    check_device(device)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}); "
                         f"it may be truncated, corrupt or not from train.py: retrain or use another file") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} holds a {type(ckpt).__name__}, not a train.py checkpoint (a dict)")
    return ckpt


def load_model(path, device="cpu"):
    """A SparseCut model from a train.py checkpoint, and the checkpoint dict."""
    ckpt = load_checkpoint(path, device)
    missing = [k for k in ("model_config", "model", "config") if k not in ckpt]
    if missing:
        raise ValueError(f"{path} has no {', '.join(map(repr, missing))}: not a checkpoint written by train.py")
    try:
        model = SparseCut(SparseCutConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        raise ValueError(f"{path} does not hold a SparseCut model ({type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:120]})") from None
    return model.to(device), ckpt
