"""Checkpoints that survive a kill: atomic writes and the random state an exact resume needs.

A checkpoint is written to a temporary file in the same folder, flushed to disk and then
moved over the old one with ``os.replace`` (:mod:`labkit.atomic`), which is atomic on POSIX
and Windows: a process killed at any instant leaves either the previous checkpoint or the
new one, never half a file. Checkpoints hold only tensors and plain Python values, so they load with
``torch.load(weights_only=True)`` (no arbitrary code runs when a checkpoint is opened).

Resuming exactly (the same weights as a run that was never stopped) needs, besides model,
optimizer, scheduler and grad-scaler state, every random number generator the run draws
from: Python's ``random``, NumPy's global generator, torch's CPU generator and, when CUDA
is in use, the CUDA generators. :func:`rng_state` / :func:`set_rng_state` capture and
restore them; :mod:`labkit.train` adds the data loader's own generator.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.atomic import replace_atomically
from labkit.errors import LabkitError

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "load_weights",
    "rng_state",
    "save_atomic",
    "set_rng_state",
    "unwrap",
]

log = logging.getLogger(__name__)


class CheckpointError(LabkitError, ValueError):
    """A checkpoint is missing, unreadable or does not fit the model."""


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` so that a kill never leaves a corrupt file.

    Args:
        obj (Any): what to save (tensors, state dicts, plain Python values).
        path (str | os.PathLike): the destination; its folder is created when missing.

    Returns:
        The path written.
    """
    return replace_atomically(path, lambda fh: torch.save(obj, fh))


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_atomic`.

    Args:
        path (str | os.PathLike): the ``.pt`` file.
        map_location (str | torch.device): where tensors are loaded to.

    Returns:
        The saved dict.

    Raises:
        CheckpointError: if the file is missing or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; expected a file written by labkit "
            "training (last.pt or best.pt in a run folder)."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several kinds for a damaged or foreign file
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); expected a "
            "labkit checkpoint. Delete it to start over."
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(state).__name__}; expected "
            "the dict labkit training writes."
        )
    return state


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a ``DistributedDataParallel`` or ``torch.compile`` wrapper."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def load_weights(
    model: nn.Module, checkpoint: dict | str | os.PathLike, *, strict: bool = True
) -> nn.Module:
    """Load a checkpoint's model weights into ``model``.

    Args:
        model (nn.Module): the network (plain or wrapped).
        checkpoint (dict | str | os.PathLike): a checkpoint dict (with a ``"model"`` entry) or its
            path.
        strict (bool): every key must match, as in ``load_state_dict``.

    Returns:
        ``model``.

    Raises:
        CheckpointError: if the checkpoint has no weights or they do not fit the model.
    """
    state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError(
            f"checkpoint has no 'model' weights (keys: {sorted(state)}); "
            "expected one written by labkit training."
        )
    try:
        unwrap(model).load_state_dict(weights, strict=strict)
    except RuntimeError as err:
        raise CheckpointError(
            f"the checkpoint's weights do not fit this model: "
            f"{str(err).splitlines()[0]} Build the model with the run's "
            "config (its config.yaml)."
        ) from err
    return model


def rng_state() -> dict:
    """Capture the state of every global random generator a training run draws from.

    Returns:
        A dict of tensors and plain values (loadable with ``weights_only=True``).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    # Only when CUDA is already in use: querying it would otherwise start a CUDA context.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore generators captured by :func:`rng_state`.

    Args:
        state (dict): the dict :func:`rng_state` returned (possibly saved and reloaded).
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            log.warning(
                "checkpoint has CUDA random state for %d GPUs, %d visible; not restored",
                len(cuda),
                torch.cuda.device_count(),
            )
