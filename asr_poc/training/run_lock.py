"""One active run per runs folder, enforced by the operating system.

`<runs folder>/active-run.lock` is locked with `fcntl.flock` by whoever trains (the training process, or the
kernel whose thread trains) for the run's whole life, and holds `<pid> <run id>` so a refused Start can say who
holds it. The lock belongs to the open file, so it ends with the process however that process ends (kill -9
included): there is never a stale lock to clean up. A background run's launcher takes the lock, hands the open
file to the worker process it starts (`--lock-fd`), and closes its own copy: two Starts a millisecond apart, from
two threads or two processes, cannot both win.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Optional

LOCK_NAME = "active-run.lock"


class RunAlreadyActive(RuntimeError):
    """A run is already training (this one, or another one in the same runs folder)."""


class RunsFolderLock:
    """The lock of one runs folder. `acquire()` or raise `RunAlreadyActive`; `release()`; or hand over `fd`."""

    def __init__(self, root: str | os.PathLike, fd: Optional[int] = None):
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.fd = fd

    def __repr__(self) -> str:
        return f"RunsFolderLock({str(self.root)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, run_id: str, pid: Optional[int] = None) -> "RunsFolderLock":
        """Take the lock for `run_id` (trained by `pid`, default this process), or raise `RunAlreadyActive`."""
        if self.fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunAlreadyActive(self._refusal()) from None
        self.fd = fd
        self.record(run_id, pid)
        return self

    def record(self, run_id: str, pid: Optional[int] = None) -> None:
        """Write who holds the lock (e.g. the worker's pid once it is started)."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid or os.getpid()} {run_id}\n".encode(), 0)

    def release(self) -> None:
        """Give the lock up (closing the file releases it; a child that inherited it keeps it)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def holder(self) -> tuple[Optional[int], Optional[str]]:
        """(pid, run id) written by the holder, or (None, None)."""
        try:
            pid, _, run_id = self.path.read_text(errors="replace").strip().partition(" ")
            return int(pid), run_id or None
        except (OSError, ValueError):
            return None, None

    def _refusal(self) -> str:
        pid, run_id = self.holder()
        for _ in range(20):  # the winner writes its name just after taking the lock
            if run_id:
                break
            time.sleep(0.01)
            pid, run_id = self.holder()
        if run_id:
            return f"run {run_id} is training (pid {pid}) in {self.root}; stop it before starting another"
        return f"another run is training in {self.root} ({self.path} is locked); stop it before starting another"
