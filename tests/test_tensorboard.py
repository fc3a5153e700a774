"""`training.tensorboard: true`: the run's scalars also go to TensorBoard, read back with its EventAccumulator."""
from __future__ import annotations

from pathlib import Path

import pytest

from asr_poc.training.tensorboard import TensorBoardSink, scalars


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_the_numbers_of_step_eval_and_extra_eval_events_become_scalars(tmp_path: Path):
    events = [
        {"type": "status", "state": "running"},
        {"type": "log", "level": "info", "message": "x"},
        {"type": "step", "step": 1, "epoch": 1, "loss": 4.5, "lr": 1e-4, "grad_norm": 3.0},
        {"type": "step", "step": 2, "epoch": 1, "loss": 3.25, "lr": 2e-4, "grad_norm": float("nan")},
        {"type": "eval", "step": 2, "epoch": 1, "wer": 0.75, "cer": 0.5, "best": True},
        {"type": "extra_eval", "dataset": "real-check", "step": 2, "epoch": 1, "wer": 1.0, "cer": 0.875},
        {"type": "checkpoint", "path": "last.pt", "step": 2, "epoch": 1, "kind": "last"},
        {"type": "status", "state": "finished"},
    ]
    sink = TensorBoardSink(tmp_path)
    for event in events:
        sink.write(event)
    assert sink.writer is None, "a final status closes the writer"
    got = read_scalars(tmp_path / "tensorboard")
    assert got == {"train/loss": [(1, 4.5), (2, 3.25)], "train/lr": [(1, pytest.approx(1e-4)), (2, pytest.approx(2e-4))],
                   "train/grad_norm": [(1, 3.0)], "dev/wer": [(2, 0.75)], "dev/cer": [(2, 0.5)],
                   "real-check/wer": [(2, 1.0)], "real-check/cer": [(2, 0.875)]}
    assert scalars({"type": "log", "step": 3, "loss": 1.0}) == {} and scalars({"type": "step", "loss": 1.0}) == {}


def test_a_run_with_tensorboard_on_writes_the_same_losses_as_its_events(small_corpus: Path, tmp_path: Path):
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train
    from conftest import tiny_config

    run = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=3", "training.tensorboard=true"))
    assert train(run)["state"] == "finished"
    losses = [(e["step"], e["loss"]) for e in run.events("step")]
    assert [s for s, _ in losses] == [1, 2, 3]
    got = read_scalars(run.path / "tensorboard")
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in losses] == got["train/loss"]

    off = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=1"))
    assert train(off)["state"] == "finished" and not (off.path / "tensorboard").exists()  # off by default
