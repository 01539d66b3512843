"""
Checkpoints: written atomically, read safely, with one-line errors a user can act on.
"""
import atexit
import errno
import json
import os
import platform
import shutil
import signal
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
    if kind not in ("cpu", "cuda", "mps"):  # 'meta' holds no numbers; others need builds we never test
        raise ValueError(f"device={device!r} cannot run a model here: use 'cpu', 'cuda' or 'cuda:N'")
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


def finite_step(optimizer, loss, params):
    """optimizer.step() unless the loss is non-finite. Returns what went non-finite, 'loss' or
    'update', or None: a finite but huge loss can still make a non-finite update, and a learning
    rate past float32's range makes Adam raise instead (a traceback, not the stop it deserves)."""
    if not torch.isfinite(loss):
        return "loss"
    try:
        optimizer.step()
    except RuntimeError as e:
        if "overflow" not in str(e):  # "value cannot be converted to type float without overflow"
            raise
        return "update"
    return None if all_finite(params) else "update"


def write_json(path, obj):
    """A result file others read (results.json, a sweep's table, bench/probe JSON), written
    atomically: a kill at any moment leaves the previous file or the new one, never half of one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
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
    """torch.save, written atomically (write_atomic: a temporary file of this process, fsync, rename):
    a crash at any point leaves the old file whole (without the fsync, a power cut after the
    rename could leave an empty file)."""
    if "model" in state and not all_finite(state["model"]):
        raise ValueError(f"refusing to write non-finite weights to {path}")  # a bug upstream: never happens

    def write(f):
        try:
            torch.save(state, f)
        except RuntimeError as e:  # torch's writer hides a failed write (a full disk) behind "unexpected pos"
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None  # the OSError itself: write_atomic names the file
            raise
    write_atomic(path, write)


def check_out_dir(out_dir):
    """A ValueError unless out_dir is a folder or can be made one, and can be written."""
    up = os.path.abspath(out_dir)
    while not os.path.exists(up):  # the first part of out_dir that exists must be a folder
        up = os.path.dirname(up)
    if not os.path.isdir(up):
        raise ValueError(f"out_dir={out_dir!r} cannot be made: {up} is a file, not a folder")
    if not os.access(up, os.W_OK):  # a read-only disk (EROFS) or folder: said before the work, not after it
        raise ValueError(f"out_dir={out_dir!r} cannot be written: {up} is read-only; give a folder you can write")


def check_result_path(path):
    """A ValueError unless a result file can be written at path: checked before the work that fills it."""
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder: give a file name, e.g. out/result.json")
    check_out_dir(os.path.dirname(path) or ".")


RUN_FILES = ("ckpt.pt", "vit.pt", "results.json", "log.jsonl")  # what one train.py run writes in its out_dir


def claim_out_dir(out_dir, new_run):
    """One run per out_dir: an exclusive lock on out_dir/.lock, held by the returned open file until
    the process ends (a kill releases it too); a ValueError if another process holds it, or if
    out_dir cannot be written. A new run (not a resume) then moves an earlier run aside
    (move_aside). Returns (lock, what moved). A folder this makes and the run leaves empty (refused
    on a later check, stopped before its first file) goes again at exit."""
    made = not os.path.isdir(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
        lock = open(os.path.join(out_dir, ".lock"), "a")  # not "w": Windows refuses to truncate a locked file
    except OSError as e:  # a read-only disk, a full one
        raise ValueError(f"out_dir={out_dir!r} cannot be written ({e.strerror}: {e.filename}): "
                         f"give a folder you can write") from None
    try:
        if os.name == "nt":  # Windows has no flock: a lock on the file's first byte, released at exit too
            import msvcrt
            msvcrt.locking(lock.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):  # held (PermissionError: Windows's EACCES)
        lock.close()
        raise ValueError(f"another train.py is running in out_dir={out_dir}: wait for it, or use another --out_dir") from None
    if made:
        atexit.register(drop_if_unused, out_dir)
    for name in os.listdir(out_dir):  # temporary files of a killed run (ours are written under the lock)
        if name.endswith(".tmp"):
            os.remove(os.path.join(out_dir, name))
    return lock, move_aside(out_dir) if new_run else {}


def drop_if_unused(out_dir):
    try:
        if os.listdir(out_dir) == [".lock"]:
            os.remove(os.path.join(out_dir, ".lock"))
            os.rmdir(out_dir)
    except OSError:  # gone already, or another run came
        pass


def move_aside(out_dir):
    """A new run in an out_dir that holds an earlier one: the earlier run's files go to
    out_dir/previous/ (one generation: what was there before is replaced), so nothing finished is
    lost and no folder holds files of two runs. Returns {old path: new path} of what moved."""
    files = [f for f in RUN_FILES if os.path.exists(os.path.join(out_dir, f))]
    if not any(f != "log.jsonl" for f in files):
        return {}
    previous = os.path.join(out_dir, "previous")
    shutil.rmtree(previous, ignore_errors=True)
    os.makedirs(previous)
    moved = {}
    for f in files:
        os.replace(os.path.join(out_dir, f), os.path.join(previous, f))
        moved[os.path.abspath(os.path.join(out_dir, f))] = os.path.join(previous, f)
    return moved


def truncate_log(path, stage, it, order=("vit", "align", "tune")):
    """Keep the lines of a log.jsonl from before (stage, it), where a resumed run continues: the
    steps a killed run logged after its last checkpoint are run again, and logged once."""
    if not os.path.exists(path):
        return
    keep = []
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
                if (order.index(e["stage"]), e["iter"]) < (order.index(stage), it):
                    keep.append(line if line.endswith("\n") else line + "\n")
            except (ValueError, KeyError, TypeError):  # a line cut by the kill: never a step's record
                pass
    write_atomic(path, lambda f: f.write("".join(keep).encode()))


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
    if isinstance(ckpt.get("model"), dict) and not all_finite(ckpt["model"]):  # train.py never writes one
        raise ValueError(f"{path} holds non-finite weights (NaN or inf), as from a run that diverged: "
                         f"use another checkpoint or train again")
    return ckpt


def same_model(ckpt, model_config):
    """Whether a checkpoint holds a model of this SparseCutConfig. A setting added since it was
    written takes its default, which is the model it was."""
    from dataclasses import asdict
    try:
        return asdict(SparseCutConfig(**ckpt["model_config"])) == asdict(model_config)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


# what sample.py and evaluate.py read back from the config a checkpoint was trained with
DATA_KEYS = ("data", "data_dir", "data_seed", "image_root", "eval_data", "eval_fraction", "image_size",
             "n_train", "n_val", "n_test", "min_objects", "max_objects", "question_types")


def load_model(path, device="cpu", data_keys=DATA_KEYS):
    """A SparseCut model from a train.py checkpoint, and the checkpoint dict; its config must hold
    data_keys (what the caller reads back: probe.py reads none)."""
    ckpt = load_checkpoint(path, device)
    missing = [k for k in ("model_config", "model", "config") if k not in ckpt]
    if missing:
        raise ValueError(f"{path} has no {', '.join(map(repr, missing))}: not a checkpoint written by train.py")
    if not isinstance(ckpt["config"], dict):
        raise ValueError(f"{path}: its 'config' is a {type(ckpt['config']).__name__}: not a checkpoint written by train.py")
    missing = [k for k in data_keys if k not in ckpt["config"]]
    if missing:
        raise ValueError(f"{path}: its 'config' has no {', '.join(map(repr, missing[:3]))}{'...' * (len(missing) > 3)} "
                         f"setting: not a checkpoint written by train.py")
    try:
        model = SparseCut(SparseCutConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise ValueError(f"{path} does not hold a SparseCut model ({type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:120]})") from None
    return model.to(device), ckpt


def exit_in_one_line(script, out_dir=None):
    """Ctrl-C, SIGTERM (kill, a cluster's scheduler) and an OSError (a full or read-only disk) end
    `script` with one line on stderr instead of a traceback: what happened, the fix, and for a run
    in out_dir where its last checkpoint is and how to continue from it. Any other exception is a
    bug: its traceback stays. SIGTERM becomes KeyboardInterrupt, so that it unwinds as Ctrl-C
    does: a checkpoint half written is dropped whole (write_atomic), the previous one stays."""
    def last_checkpoint():
        if out_dir is None:
            return ""
        found = [p for p in (os.path.join(out_dir, f) for f in ("ckpt.pt", "vit.pt")) if os.path.isfile(p)]
        if not found:
            return "; no checkpoint was written yet: start it again"
        return f"; the last checkpoint is {found[0]}: continue with --init_from='resume' (and the same settings)"

    def hook(kind, e, tb):
        if issubclass(kind, KeyboardInterrupt):
            msg = "interrupted"
        elif issubclass(kind, OSError):  # a write names no file (a full disk, at f.write): then out_dir is it
            where = e.filename or out_dir or "?"
            msg = {errno.ENOSPC: f"no space left on device writing {where}: free some space there or write elsewhere",
                   errno.EROFS: f"{where} is on a read-only file system: give a folder you can write",
                   errno.EACCES: f"{where}: permission denied: give a folder you can write"
                   }.get(e.errno, f"{e.strerror or e}: {where}")
        else:
            return sys.__excepthook__(kind, e, tb)
        print(f"{script}: {msg}{last_checkpoint()}", file=sys.stderr)

    def terminate(signum, frame):
        raise KeyboardInterrupt
    sys.excepthook = hook
    signal.signal(signal.SIGTERM, terminate)
