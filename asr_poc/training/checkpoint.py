"""Atomic writes: a crash or a full disk never leaves half a file, and never removes the previous one."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class DiskFullError(OSError):
    """The disk filled while writing; the previous file at that path is intact."""


def _atomic_write(path: str | os.PathLike, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise DiskFullError(errno.ENOSPC, f"disk full while writing {path}; the previous file is kept") from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` to a temporary file in the same folder, fsync, then rename over `path`."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))
