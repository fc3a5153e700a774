"""Training throughput (audio seconds trained per wall second) and peak memory, on the real trainer, beside the
model step alone (`model_step.py`: the same model on batches already on the device) and the trainer's share of it.

A throw-away run of the same architecture (fresh weights) trains for `warmup + steps` optimizer steps in a
separate process through `asr_poc.training.trainer.train`: the same data loading, collation, SpecAugment,
optimizer, gradient clipping and schedule as `asr-poc train`. Throughput comes from the run's own `step` events
after the warm-up steps; peak memory is that process's peak resident set (CPU) or peak CUDA allocation, so
nothing else the benchmark holds is counted.

`python -m asr_poc.bench.training RUN_DIR` is the child process: it trains RUN_DIR and writes `bench_memory.json`.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from ..config import load_config, validate_config
from ..runs import Run

MEMORY_FILE = "bench_memory.json"


def training_config(model_name: str, model_section: dict, config_path: Optional[str], overrides: Sequence[str],
                    root: str, steps: int, threads: Optional[int], batch_size: Optional[int]) -> dict:
    """The config of the throw-away run: the user's config and data set, this model, a step limit, no evals."""
    sets = [*overrides, f"model={model_name}", f"checkpoint_dir={root}", f"training.max_steps={steps}",
            "training.eval_utterances=0", "training.extra_eval=[]", "training.max_minutes=null", "training.epochs=1000",
            f"training.num_threads={threads or 'null'}"]
    if batch_size:
        sets.append(f"training.batch_size={batch_size}")
    cfg = load_config(config_path, sets)
    cfg["models"][model_name] = dict(model_section)
    if cfg["models"][model_name].get("ctc_warmup_steps"):  # rnn-t: the figure is of its transducer step, not of the
        cfg["models"][model_name]["ctc_warmup_steps"] = 0  # CTC warm-up that starts a new run
    return validate_config(cfg)


def measure_training(model_name: str, model_section: dict, config_path: Optional[str] = None,
                     overrides: Sequence[str] = (), steps: int = 20, warmup: int = 3, threads: Optional[int] = None,
                     batch_size: Optional[int] = None, timeout: float = 900.0, env: Optional[dict] = None,
                     background: bool = False) -> dict:
    """Train `warmup + steps` steps in a child process; return throughput and memory figures.

    `env` is added to the child's environment (before it imports torch); `background` applies the thread policy
    as a background run does (`asr_poc.threads.prepare_process(background=True)`: a session of its own,
    `training.nice`)."""
    warmup = max(1, warmup)
    with tempfile.TemporaryDirectory(prefix="asr-poc-bench-train-") as root:
        cfg = training_config(model_name, model_section, config_path, overrides, root, warmup + steps, threads,
                              batch_size)
        run = Run.create(cfg, root=root)
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-m", "asr_poc.bench.training", str(run.path), str(steps),
                                *(["--background"] if background else [])],
                               capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
                               start_new_session=background)  # a session of its own, as the launcher's worker
        wall = time.perf_counter() - started
        status = run.status
        if child.returncode != 0 or status.get("state") != "finished":
            tail = (status.get("error") or child.stderr.strip().splitlines()[-1:] or ["no output"])
            raise RuntimeError(f"training measurement failed: {tail if isinstance(tail, str) else tail[0]}")
        memory = json.loads((run.path / MEMORY_FILE).read_text())
        figures = throughput_from_events(run.events("step"), warmup)
        alone = memory.pop("model_step", None) or {}
        if alone.get("audio_seconds_per_second") and figures["audio_seconds_per_second"]:
            figures["model_step_audio_seconds_per_second"] = alone["audio_seconds_per_second"]
            figures["share_of_model_step"] = figures["audio_seconds_per_second"] / alone["audio_seconds_per_second"]
        tc = cfg["training"]
        return {**figures, **memory, "batch_size": tc["batch_size"], "spec_augment": tc["spec_augment"],
                "optimizer": tc["optimizer"], "process_wall_seconds": wall,
                "path": "asr_poc.training.trainer.train in a child process"}


def throughput_from_events(steps: list[dict], warmup: int) -> dict:
    """Audio seconds per wall second over the steps after `warmup` (each step's own rate times its duration)."""
    if len(steps) <= warmup:
        raise RuntimeError(f"only {len(steps)} training steps were recorded; need more than {warmup}")
    times = [float(s["time"]) for s in steps]
    rates = [float(s["audio_seconds_per_second"]) for s in steps]
    spans = [times[i] - times[i - 1] for i in range(warmup, len(steps))]
    audio = sum(rate * span for rate, span in zip(rates[warmup:], spans))
    wall = times[-1] - times[warmup - 1]
    spans_sorted = sorted(spans)
    return {"audio_seconds_per_second": audio / wall if wall > 0 else None, "steps_measured": len(spans),
            "warmup_steps": warmup, "audio_seconds": audio, "wall_seconds": wall,
            "step_ms_p50": 1000 * spans_sorted[len(spans_sorted) // 2]}


def _rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _child(run_dir: str, steps: int, background: bool = False) -> int:
    from ..threads import prepare_process

    training = Run(run_dir).config.get("training", {})
    settings = prepare_process(training.get("threads", "auto"), training.get("num_threads"), background=background,
                               nice=training.get("nice", 0))
    import torch  # here, not at the top: OpenMP reads the settings above once, when torch loads it

    from ..training.trainer import train  # imports torch

    before = _rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    status = train(Run(run_dir))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    memory = {"rss_at_start_mb": before, "peak_rss_mb": after.ru_maxrss / 1024, "threads": torch.get_num_threads(),
              "thread_settings": settings,
              # cores this process kept busy on average; below `threads` means other processes took CPU from it
              "cores_used": cpu / wall if wall > 0 else None, "device": "cpu", "peak_cuda_mb": None}
    if torch.cuda.is_available():
        memory.update(device=torch.cuda.get_device_name(0), peak_cuda_mb=torch.cuda.max_memory_allocated() / 2**20)
    if status.get("state") == "finished":  # after the memory figures: they are the trainer's alone
        from .model_step import model_step_throughput

        memory["model_step"] = model_step_throughput(run_dir, steps=steps)
    (Path(run_dir) / MEMORY_FILE).write_text(json.dumps(memory))
    return 0 if status.get("state") == "finished" else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(_child(sys.argv[1], int(sys.argv[2]), background="--background" in sys.argv[3:]))
