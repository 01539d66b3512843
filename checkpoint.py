"""
Checkpoints: written atomically, read safely, with one-line errors a user can act on.
"""
import os

import torch

from sparsecut import SparseCut, SparseCutConfig


def save_checkpoint(path, state):
    """torch.save to path + '.tmp', then an atomic rename: a crash mid-write leaves the old file."""
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, device="cpu"):
    """The checkpoint dict. weights_only=True: loading never runs code from the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found: train first (python train.py) or fix the path")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}); "
                         f"it may be truncated or corrupt: delete it and retrain") from None


def load_model(path, device="cpu"):
    """A SparseCut model from a train.py checkpoint, and the checkpoint dict."""
    ckpt = load_checkpoint(path, device)
    try:
        model = SparseCut(SparseCutConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"{path} does not hold a SparseCut model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120]})") from None
    return model.to(device), ckpt
