"""What the figures were measured on: CPU, cores, memory, GPU, library versions and the load at the time."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (other processes share the cores: figures under load are noisy)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def describe() -> dict:
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = os.cpu_count() or 1
    summary = f"{cores}-core {cpu_model()} CPU, {memory_gib()} GiB, " + (f"GPU {cuda}" if cuda else "no GPU")
    return {"summary": summary, "cpu": cpu_model(), "cores": cores, "memory_gib": memory_gib(), "gpu": cuda,
            "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_average_start": load_average()}
