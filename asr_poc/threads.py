"""CPU threads for a process that shares the machine: training runs beside the page's kernel, notebooks, other runs.

Why (figures in benchmarks/README.md, "Training beside a busy core"): torch's two intra-op threads on a 2-core
machine lose most of their idle throughput beside one busy core, because every parallel region ends in a barrier
and one of the two threads is always waiting for the core the other process holds. Fewer intra-op threads than
free cores avoid the barrier stall; a passive OpenMP wait (`OMP_WAIT_POLICY=PASSIVE`) stops idle OpenMP threads
from spinning on a core someone else needs. OpenMP reads its environment once, when torch loads it, so
`prepare_process` must run before `import torch` in the process it configures (the training worker does).

`training.threads` chooses the policy:
- `auto` (default): passive OpenMP wait; intra-op threads = the cores left free by other processes, measured over
  a short window at process start (at least 1); one inter-op thread. `training.num_threads` still fixes the count.
- `torch`: torch's own defaults (all cores, OpenMP's spinning wait), as before this module existed.
`training.nice: N` (default 0) also nices a background run (the worker process), so that everything else on the
machine comes first: a niced run beside a busy core keeps much less of its throughput than an un-niced one (same
README section), so it is off by default. Where the kernel groups processes by session (autogroup, the default on desktop and many server
kernels), a process's niceness only counts within its session, so the worker's own session's autogroup is niced too.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Literal, Optional

from .runs import list_runs

Policy = Literal["auto", "torch"]
PASSIVE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}  # GNU and Intel OpenMP: no spinning while waiting
SAMPLE_SECONDS = 0.5  # how long `busy_cores` watches the machine
BUSY_CORE_THRESHOLD = 0.5  # another process using more than half a core takes that core away


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cpu_times() -> Optional[tuple[float, float]]:
    """(busy, total) jiffies of all cores from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def _self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """Cores kept busy by other processes over the next `seconds` (this process's own CPU time is left out).

    Falls back to the 1-minute load average where /proc/stat cannot be read.
    """
    before, mine = _cpu_times(), _self_cpu_seconds()
    if before is None:
        return min(float(cpu_count()), os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0.0
    time.sleep(seconds)
    after, mine = _cpu_times(), _self_cpu_seconds() - mine
    busy, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return 0.0
    cores = cpu_count_total()
    return max(0.0, busy / total * cores - mine / seconds)


def cpu_count_total() -> int:
    """All cores /proc/stat counts (the machine's, which is what other processes share with us)."""
    return os.cpu_count() or 1


def choose_threads(cores: int, busy: float) -> int:
    """Intra-op threads for a process beside others that keep `busy` cores busy: the free cores, at least 1."""
    taken = int(busy + (1 - BUSY_CORE_THRESHOLD))  # round half a core and more up
    return max(1, cores - taken)


def prepare_process(policy: Policy = "auto", num_threads: Optional[int] = None, background: bool = False,
                    nice: int = 0) -> dict:
    """Apply `policy` to this process; call it before torch is imported (returns what it did, for the run's log).

    Sets the OpenMP environment (only keys the user has not set), nices a background process by `nice`, then imports torch
    and sets its intra-op and inter-op thread counts. Safe to call when torch is already imported: the environment
    then comes too late for OpenMP, which the returned `env_before_torch` says.
    """
    env_before_torch = "torch" not in sys.modules
    applied_env: dict[str, str] = {}
    busy = None
    if policy == "auto":
        for key, value in PASSIVE_ENV.items():
            if key not in os.environ:
                os.environ[key] = applied_env[key] = value
        if num_threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
            num_threads = int(os.environ["OMP_NUM_THREADS"])  # the user's, or torchrun's 1 per rank: it wins
        if num_threads is None:
            busy = busy_cores()
            num_threads = choose_threads(cpu_count(), busy)
    increment, nice, autogroup_nice = nice, None, None
    if background and increment > 0 and hasattr(os, "nice"):
        nice, autogroup_nice = os.nice(increment), _nice_autogroup(increment)
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)
    if policy == "auto":
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work has started: keep what there is
            pass
    return {"policy": policy, "torch_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "env": applied_env,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "env_before_torch": env_before_torch,
            "busy_cores_at_start": None if busy is None else round(busy, 2), "nice": nice,
            "autogroup_nice": autogroup_nice}


def _nice_autogroup(increment: int) -> Optional[int]:
    """Raise the niceness of this process's scheduler autogroup (Linux with CONFIG_SCHED_AUTOGROUP, where a
    process's own niceness only counts against processes of the same session, and a background run has a session
    of its own); the new value, or None where there is no autogroup to change or it is not this process's own
    (only a session leader, like the launcher's worker, changes it)."""
    path = "/proc/self/autogroup"
    if os.getsid(0) != os.getpid():  # not a session leader: the autogroup is shared with whoever started us
        return None
    try:
        with open(path, encoding="ascii") as f:
            current = int(f.read().split("nice")[1])
        with open(path, "w", encoding="ascii") as f:
            f.write(str(min(19, current + increment)))
        with open(path, encoding="ascii") as f:
            return int(f.read().split("nice")[1])
    except (OSError, ValueError, IndexError):
        return None


def describe(settings: dict) -> str:
    """One line for the run's log: what `prepare_process` did."""
    parts = [f"{settings['torch_threads']} intra-op thread(s)", f"{settings['interop_threads']} inter-op",
             f"OMP_WAIT_POLICY={settings['omp_wait_policy'] or 'unset'}"]
    if settings.get("busy_cores_at_start") is not None:
        parts.append(f"{settings['busy_cores_at_start']} cores busy at start")
    if settings.get("nice") is not None:
        parts.append(f"nice {settings['nice']}")
    if settings.get("autogroup_nice") is not None:
        parts.append(f"session autogroup nice {settings['autogroup_nice']}")
    if not settings.get("env_before_torch"):
        parts.append("torch was imported first: OpenMP settings not applied")
    return f"threads ({settings['policy']}): " + ", ".join(parts)


_TORCH_DEFAULT_THREADS: Optional[int] = None  # this process's thread count before `set_decode_threads` changed it
TRAINING_CHECK_SECONDS = 2.0  # `set_decode_threads` looks at the run folders at most this often
_last_check: dict = {"root": None, "time": -1e9, "active": False}


def set_decode_threads(root: Optional[str | os.PathLike] = None) -> int:
    """Set this thread's torch intra-op threads for an interactive decode (the Test tab) and return the count:
    1 while a run trains in the runs folder `root` (the page takes one core, the run keeps the others and its
    thread barrier never waits for the page), else the count torch had before."""
    global _TORCH_DEFAULT_THREADS
    import torch

    if _TORCH_DEFAULT_THREADS is None:
        _TORCH_DEFAULT_THREADS = torch.get_num_threads()
    now = time.monotonic()
    if _last_check["root"] != root or now - _last_check["time"] > TRAINING_CHECK_SECONDS:
        _last_check.update(root=root, time=now, active=training_active(root))
    wanted = 1 if _last_check["active"] else _TORCH_DEFAULT_THREADS
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted


def training_active(root: Optional[str | os.PathLike] = None) -> bool:
    """Whether a run trains now in the runs folder `root` (default: the project's), read from the run folders."""
    try:
        return any(run.is_active for run in list_runs(root))
    except OSError:
        return False
