"""Checkpoint files of a run: atomic writes, a clear line when the disk is full, and the resume fallback.

Writes go to a temporary file in the same folder, are fsynced, renamed over the target and the folder is fsynced,
so a crash or a full disk never leaves half a file and never removes the previous one. Reading is
`asr_poc.checkpoint_io.load_checkpoint_file` (weights_only: a file cannot run code). torch is imported only where
a checkpoint is written or read, so that following a run (the dashboard's Training and Runs tabs) stays light.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

TRAINING_KEYS = ("state_dict", "config", "optimizer", "scheduler", "step", "epoch", "batch_in_epoch")
STALE_TEMPORARY_SECONDS = 60.0  # a temporary file this old belongs to a writer that died (saves take seconds)


class DiskFullError(OSError):
    """The disk filled while writing; the previous file at that path is intact. `str()` is one line."""

    def __str__(self) -> str:
        return str(self.strerror)


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _CountingWriter:
    """A file wrapper that counts bytes and keeps the OSError of a failed write (torch re-raises it as RuntimeError)."""

    def __init__(self, f: BinaryIO):
        self.f, self.written, self.error = f, 0, None

    def write(self, data) -> int:
        try:
            n = self.f.write(data)
        except OSError as err:
            self.error = err
            raise
        self.written += n or 0
        return n

    def flush(self) -> None:
        self.f.flush()


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None], size_hint: int = 0) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    writer = None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; every file of a run gets the usual mode
        with os.fdopen(fd, "wb") as f:
            writer = _CountingWriter(f)
            write(writer)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        cause = writer.error if writer is not None and writer.error is not None else err
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            needed = max(size_hint, writer.written if writer else 0)
            free = shutil.disk_usage(path.parent).free
            raise DiskFullError(cause.errno, f"disk full while writing {path}: needs about {_human(needed)}, "
                                             f"{_human(free)} free; the previous file is kept") from None
        raise


def _tensor_bytes(obj: Any) -> int:
    """About how many bytes `torch.save(obj)` writes: the tensors' storage (the rest is small)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` to a temporary file in the same folder, fsync, then rename over `path`.

    A full disk raises `DiskFullError` naming the file, the bytes needed (about) and the bytes free.
    """
    import torch

    _atomic_write(path, lambda f: torch.save(obj, f), size_hint=_tensor_bytes(obj) + 64 * 1024)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    data = text.encode("utf-8")
    _atomic_write(path, lambda f: f.write(data), size_hint=len(data))


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by a killed writer: a checkpoint's always (only the trainer writes those, under
    the run lock), others once older than a minute (a reader may be writing STOP right now). Returns them."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            old = time.time() - tmp.stat().st_mtime > STALE_TEMPORARY_SECONDS
            if re.match(r"^\.(last|best|epoch-\d+)\.pt\.", tmp.name) or old:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            continue
    return removed


def resume_candidates(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints to resume from, newest first: last.pt, epoch-N.pt (highest N first), best.pt."""
    folder = Path(folder)
    epochs = sorted((p for p in folder.glob("epoch-*.pt") if re.fullmatch(r"epoch-\d+\.pt", p.name)),
                    key=lambda p: int(p.stem.split("-")[1]), reverse=True)
    return [p for p in (folder / "last.pt", *epochs, folder / "best.pt") if p.is_file()]


def load_resume_checkpoint(folder: str | os.PathLike, map_location: Any = "cpu"
                           ) -> tuple[Optional[dict], Optional[Path], list[str]]:
    """(state, its path, one line per checkpoint passed over) of the newest readable training checkpoint.

    (None, None, []) when the folder has no checkpoint at all; `CheckpointRefused` when it has some and none of
    them can be read (the message lists why, file by file).
    """
    from ..checkpoint_io import CheckpointRefused, load_checkpoint_file

    skipped: list[str] = []
    for path in resume_candidates(folder):
        try:
            state = load_checkpoint_file(path, map_location=map_location)
        except (CheckpointRefused, OSError) as err:
            skipped.append(str(err))
            continue
        missing = [k for k in TRAINING_KEYS if k not in state]
        if missing:
            skipped.append(f"{path}: not a training checkpoint (no {', '.join(missing)})")
            continue
        return state, path, skipped
    if skipped:
        raise CheckpointRefused("no readable checkpoint to resume from: " + "; ".join(skipped))
    return None, None, []


def rng_to_plain(numpy_state: tuple, python_state: tuple) -> dict:
    """numpy's and Python's generator states as tensors and lists (what `weights_only` loads)."""
    import torch

    name, keys, pos, has_gauss, cached = numpy_state
    version, internal, gauss_next = python_state
    return {"numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": [int(version), [int(x) for x in internal], gauss_next]}


def rng_from_plain(numpy_state: Any, python_state: Any) -> tuple[tuple, tuple]:
    """The inverse of `rng_to_plain` (also accepts the raw states of older checkpoints)."""
    import numpy as np

    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["name"], np.asarray(numpy_state["keys"].numpy(), dtype=np.uint32),
                       numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    version, internal, gauss_next = python_state
    return tuple(numpy_state), (int(version), tuple(int(x) for x in internal), gauss_next)
