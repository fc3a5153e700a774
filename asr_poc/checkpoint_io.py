"""The one way a checkpoint file is read: `torch.load(..., weights_only=True)`, so a file cannot run code.

A checkpoint holds only tensors and plain data (dicts, lists, strings, numbers). A file that needs anything else
to unpickle (a crafted object whose `__reduce__` would run a command, say) is refused with one line, before any
of it runs. The model name inside is checked against `MODEL_NAME_PATTERN` before it is used to find a plugin.
This module imports nothing of the project, so every layer can use it.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+)")
# Checkpoints written before the RNG states became tensors hold numpy's generator state as an ndarray. These three
# only rebuild arrays of plain numbers; the unpickler still refuses every other global.
try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
_LEGACY_NUMPY_GLOBALS = [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


class CheckpointRefused(ValueError):
    """The file is not a plain-data checkpoint (or not a readable one); `str()` is one line naming the file."""


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint with `weights_only=True`; raise `CheckpointRefused` (one line) for anything else.

    Raises FileNotFoundError when there is no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY_GLOBALS):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _UNSAFE_GLOBAL.search(str(err))
        if found:  # the file asks for a function or class: it would run code, or at least more than data
            raise CheckpointRefused(f"{path}: refused: not a plain-data checkpoint (it needs {found.group(1)})"
                                    ) from None
        reason = _unpickler_reason(str(err))
        if zipfile.is_zipfile(path):  # torch's format, but with pickle instructions beyond plain data
            raise CheckpointRefused(f"{path}: refused: not a plain-data checkpoint ({reason})") from None
        raise CheckpointRefused(f"{path}: not a readable checkpoint ({reason})") from None
    except Exception as err:  # truncated, not a zip/pickle, unreadable
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
        raise CheckpointRefused(f"{path}: not a readable checkpoint ({type(err).__name__}"
                                f"{': ' + reason if reason else ''})") from None
    if not isinstance(state, dict):
        raise CheckpointRefused(f"{path}: not an asr-poc checkpoint (holds a {type(state).__name__}, not a dict)")
    return state


def _unpickler_reason(message: str) -> str:
    """The useful line of torch's weights-only error (after its paragraph of advice)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    tail = [line for line in lines if not line.startswith(("Weights only load failed", "Please file an issue",
                                                            "Check the documentation", "In PyTorch"))]
    return (tail[0] if tail else "unreadable pickle")[:120]


def checked_model_state(state: dict, path: str | os.PathLike) -> tuple[str, dict, dict]:
    """(model name, model config, state_dict) of a loaded checkpoint, each checked before use."""
    name = state.get("model_name")
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        shown = repr(name)[:40] if name is not None else "none"
        raise CheckpointRefused(f"{path}: refused: model name {shown} is not a plain name "
                                f"(letters, digits, - and _, at most 64)")
    config, weights = state.get("config"), state.get("state_dict")
    if not isinstance(config, dict) or not isinstance(weights, dict):
        raise CheckpointRefused(f"{path}: not an asr-poc checkpoint (no model config or weights)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise CheckpointRefused(f"{path}: not an asr-poc checkpoint (its weights are not named tensors)")
    return name, config, weights
