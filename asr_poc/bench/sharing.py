"""Training beside a busy core: each thread setting trains idle, then beside a pure-Python busy loop, in one run.

For every `ThreadSetting` the real trainer runs `warmup + steps` steps in a child process (`training.measure_training`)
twice: on the machine as it is, then with a busy-loop process (multiprocessing, pure Python: one core, like a
notebook cell or the page's kernel at work) started first. The figure is the ratio of the two throughputs, and the
ratio to the first setting's idle throughput (torch's defaults: what a user had before). The busy loop's own rate
beside the run, against its rate alone, shows what the run left to the other process. The load average is recorded
with every measurement: on a shared machine "idle" means "as busy as the neighbours keep it".

`python -m asr_poc.bench.sharing [--steps N] [--set KEY=VALUE ...] [--out FILE.json]` prints a table.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

from .training import measure_training


@dataclass
class ThreadSetting:
    """One way to run the training process: thread policy, thread count, extra environment, niced or not."""

    name: str
    policy: str = "torch"  # training.threads
    num_threads: Optional[int] = None  # training.num_threads
    env: dict = field(default_factory=dict)
    background: bool = False  # as the worker of a background run (a session of its own)
    nice: int = 0  # training.nice


SETTINGS = [
    ThreadSetting("torch defaults (all cores, spinning OpenMP wait)"),
    ThreadSetting("all cores, OMP_WAIT_POLICY=PASSIVE", env={"OMP_WAIT_POLICY": "PASSIVE"}),
    ThreadSetting("1 thread", num_threads=1),
    ThreadSetting("auto (free cores at start, passive wait)", policy="auto"),
    ThreadSetting("auto, background, training.nice=5", policy="auto", background=True, nice=5),
]


def _spin(counter, stop) -> None:  # pragma: no cover - runs in the busy-loop process
    n = 0
    while not stop.is_set():
        for _ in range(100_000):
            n += 1
        with counter.get_lock():
            counter.value += 100_000


class BusyLoop:
    """A pure-Python process that keeps one core busy and counts its loop iterations."""

    def __init__(self):
        ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        self.counter, self.stop_event = ctx.Value("q", 0), ctx.Event()
        self.process = ctx.Process(target=_spin, args=(self.counter, self.stop_event), daemon=True)
        self.started = self.start_count = 0.0

    def __enter__(self) -> "BusyLoop":
        self.process.start()
        time.sleep(0.3)  # running before the measured process starts (and looks at the machine)
        self.started, self.start_count = time.perf_counter(), self.counter.value
        return self

    def rate(self) -> float:
        """Loop iterations per second since entering."""
        span = time.perf_counter() - self.started
        return (self.counter.value - self.start_count) / span if span > 0 else 0.0

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


def busy_loop_alone(seconds: float = 3.0) -> float:
    """The busy loop's iterations per second with no training beside it."""
    with BusyLoop() as loop:
        time.sleep(seconds)
        return loop.rate()


def measure_training_beside_busy_core(model_name: str, model_section: dict, config_path: Optional[str] = None,
                                      overrides: Sequence[str] = (), steps: int = 20, warmup: int = 3,
                                      batch_size: Optional[int] = None) -> dict:
    """`measure_training` as a background run (the config's `training.threads` and `nice`) beside a pure-Python busy
    loop on one core (`BusyLoop`); adds the busy loop's rate kept against its rate alone and the load."""
    alone = busy_loop_alone(2.0)
    with BusyLoop() as loop:
        figures = measure_training(model_name, model_section, config_path, overrides, steps=steps, warmup=warmup,
                                   batch_size=batch_size, background=True)
        figures["busy_loop_share"] = loop.rate() / alone if alone else None
    figures["load_average"] = list(os.getloadavg())
    return figures


def measure_sharing(model_name: str, model_section: dict, config_path: Optional[str] = None,
                    overrides: Sequence[str] = (), settings: Sequence[ThreadSetting] = tuple(SETTINGS),
                    steps: int = 20, warmup: int = 3, progress: bool = False) -> dict:
    """Each setting idle, then beside a busy core; throughputs, ratios, load averages."""
    def train(setting: ThreadSetting) -> dict:
        sets = [*overrides, f"training.threads={setting.policy}", f"training.nice={setting.nice}"]
        figures = measure_training(model_name, model_section, config_path, sets, steps=steps, warmup=warmup,
                                   threads=setting.num_threads, env=setting.env, background=setting.background)
        return {"audio_seconds_per_second": figures["audio_seconds_per_second"], "cores_used": figures["cores_used"],
                "torch_threads": figures["threads"], "thread_settings": figures.get("thread_settings"),
                "load_average": list(os.getloadavg())}

    alone = busy_loop_alone()
    rows = []
    for setting in settings:
        if progress:
            print(f"training beside a busy core: {setting.name}", flush=True)
        idle = train(setting)
        with BusyLoop() as loop:
            busy = train(setting)
            busy["busy_loop_share"] = loop.rate() / alone if alone else None
        rows.append({"setting": asdict(setting), "idle": idle, "beside_busy_core": busy,
                     "ratio": _ratio(busy, idle)})
    base = rows[0]["idle"]["audio_seconds_per_second"] if rows else None
    for row in rows:
        row["ratio_to_default_idle"] = _ratio(row["beside_busy_core"], rows[0]["idle"]) if base else None
    return {"model": model_name, "steps": steps, "warmup": warmup, "cores": os.cpu_count(),
            "busy_loop_alone_per_second": alone, "rows": rows}


def _ratio(a: dict, b: dict) -> Optional[float]:
    x, y = a.get("audio_seconds_per_second"), b.get("audio_seconds_per_second")
    return x / y if x and y else None


def markdown(result: dict) -> str:
    """The table of `measure_sharing`'s result."""
    lines = ["| setting | idle: audio s/s (threads, load) | beside a busy core: audio s/s (threads, load) | ratio | "
             "ratio to torch defaults idle | busy loop kept |", "| --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        i, b = row["idle"], row["beside_busy_core"]
        lines.append(f"| {row['setting']['name']} | {_fig(i)} | {_fig(b)} | {_pct(row['ratio'])} | "
                     f"{_pct(row['ratio_to_default_idle'])} | {_pct(b.get('busy_loop_share'))} |")
    return "\n".join(lines) + "\n"


def _fig(m: dict) -> str:
    rate = m.get("audio_seconds_per_second")
    load = m.get("load_average") or [None]
    return f"{rate:.1f} ({m.get('torch_threads')}, {load[0]:.2f})" if rate else "-"


def _pct(x: Optional[float]) -> str:
    return f"{100 * x:.0f}%" if x else "-"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asr_poc.bench.sharing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="entry of `models` (default: the config's model)")
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", type=int, action="append", help="indices of SETTINGS to run (default: all)")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    from ..config import load_config

    cfg = load_config(args.config, args.overrides)
    name = args.model or cfg["model"]
    settings = [s for i, s in enumerate(SETTINGS) if not args.only or i in args.only]
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = measure_sharing(name, cfg["models"][name], args.config, args.overrides, settings, args.steps,
                             args.warmup, progress=True)
    result.update(created=started, load_average_end=list(os.getloadavg()))
    print(markdown(result))
    if args.out:
        from ..io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
