"""Files written safely: atomic writes with a clear line when the disk is full, JSON lines, and YAML without aliases.

Writes go to a temporary file in the same folder, are fsynced, renamed over the target and the folder is fsynced,
so a crash or a full disk never leaves half a file and never removes the previous one. A JSON-lines file is only
appended to; a reader takes complete lines and leaves a partial last one (still being written) for later.
Reading a checkpoint is `asr_poc.checkpoint_io.load_checkpoint_file` (weights_only: a file cannot run code).
This module imports nothing of the project (the ground floor); torch only inside `atomic_torch_save`, so that
following a run (the dashboard's Training and Runs tabs) stays light.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import yaml



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
    import torch  # heavy and optional here: only checkpoint writers pay for it

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
    import torch  # heavy and optional here: only checkpoint writers pay for it

    _atomic_write(path, lambda f: torch.save(obj, f), size_hint=_tensor_bytes(obj) + 64 * 1024)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    data = text.encode("utf-8")
    _atomic_write(path, lambda f: f.write(data), size_hint=len(data))


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int | None = 1) -> None:
    """Write strict JSON (NaN and infinities become null) atomically."""
    atomic_write_text(path, json.dumps(jsonable(data), indent=indent, allow_nan=False) + "\n")


# --- JSON lines ----------------------------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """Strict JSON: NaN and infinities become null (browsers' JSON.parse refuses them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def append_json_line(path: str | os.PathLike, obj: Any) -> None:
    """Append `obj` as one line of strict JSON (a single write, flushed)."""
    line = json.dumps(jsonable(obj), allow_nan=False)
    with open(path, "a", encoding="utf-8", buffering=1) as f:
        f.write(line + "\n")
        f.flush()


def drop_partial_line(path: str | os.PathLike) -> None:
    """Cut a last line left half-written by a killed writer, so the next append starts on its own line."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def read_complete_lines(path: str | os.PathLike, offset: int = 0) -> tuple[list[bytes], int]:
    """(the complete, non-empty lines after byte `offset`, the offset to pass next time); a missing file has none.

    A partial last line (still being written) is left for the next call."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return [line for line in data[:end].splitlines() if line.strip()], offset + end


# --- YAML ------------------------------------------------------------------------------------------------------------
class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (`*name`): a few lines of nested aliases expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in asr-poc configs; "
                                              "write the value out", mark)
        return super().compose_node(parent, index)


def load_yaml_text(text: str) -> Any:
    """Parse YAML like `yaml.safe_load`, but refuse aliases (an alias bomb fails at once, in little memory)."""
    return yaml.load(text, Loader=_NoAliasLoader)


def dump_yaml(data: Any) -> str:
    """YAML text of plain data, keys in their order."""
    return yaml.safe_dump(data, sort_keys=False)
