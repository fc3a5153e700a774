"""The trainer and its runs: learning on held-out voices, exact resume, kill -9, Stop, refusals and failures."""
from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from asr_poc.config import load_config
from asr_poc.datasets.bucketing import DynamicBucketingSampler
from asr_poc.datasets.interface import DurationBucketSampler
from asr_poc.evaluation import evaluate
from asr_poc.inference import Transcriber
from asr_poc.models.conformer import ConformerCTC
from asr_poc.models.interface import BaseASRModel
from asr_poc.plugins import load_dataset, register_model
from asr_poc.training.launcher import RunAlreadyActive, start_run, stop_run
from asr_poc.runs import Run
from asr_poc.training.trainer import train
from conftest import tiny_config, wait_for


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


# --- learning ----------------------------------------------------------------------------------------------------

def test_model_learns_to_recognise_voices_it_never_heard(trained_run: Run, learning_corpus: Path):
    """CER on the test split (voices held out from training) falls below 0.5 and below half of step 0's."""
    trained = BaseASRModel.from_checkpoint(trained_run.best_checkpoint)
    section = {**trained_run.config["datasets"]["synthetic"], "path": str(learning_corpus)}
    test_set = load_dataset("synthetic", section, "test")
    torch.manual_seed(0)
    untrained = type(trained)(trained.config).eval()  # the same initial weights the run started from

    before, after = evaluate(untrained, test_set)["cer"], evaluate(trained, test_set)["cer"]
    print(f"held-out CER: step 0 {before:.3f} -> step {trained_run.status['step']} {after:.3f}")
    assert after < 0.5 and after < before / 2


def test_run_folder_records_the_run(trained_run: Run):
    status = trained_run.status
    assert status["state"] == "finished" and status["step"] == 300 and status["num_parameters"] > 1e6
    for name in ("config.yaml", "events.jsonl", "status.json", "last.pt", "best.pt", "epoch-1.pt"):
        assert (trained_run.path / name).is_file(), name
    assert not list(trained_run.path.glob(".*.tmp")), "no temporary files left behind"
    steps = trained_run.events("step")
    assert [e["step"] for e in steps] == list(range(1, 301))
    assert all(e["lr"] > 0 and e["audio_seconds_per_second"] > 0 for e in steps)
    first, last = (sum(e["loss"] for e in part) / 20 for part in (steps[:20], steps[-20:]))
    assert last < first / 2
    evals = trained_run.events("eval")
    assert evals and all(0 <= e["cer"] <= 5 and e["rtf"] > 0 for e in evals)
    assert status["best_cer"] == min(e["cer"] for e in evals)
    assert trained_run.events("status")[-1]["state"] == "finished"


# --- resume --------------------------------------------------------------------------------------------------------

def test_resume_continues_exactly_where_it_stopped(small_corpus: Path, tmp_path: Path):
    """6 steps in one go, and 3 steps + resume for 3 more, give the same weights: step, optimizer, schedule, RNG."""
    straight = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=6"))
    assert train(straight)["state"] == "finished"

    split = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=3"))
    assert train(split)["state"] == "finished"
    assert torch.load(split.last_checkpoint, weights_only=False)["step"] == 3
    split.override_training(["training.max_steps=6"])
    assert train(split, resume=True)["state"] == "finished"

    assert [e["step"] for e in split.events("step")] == [1, 2, 3, 4, 5, 6]
    assert any("resumed from last.pt at step 3" in e["message"] for e in split.events("log"))
    a, b = weights(straight.last_checkpoint), weights(split.last_checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_kill_9_then_resume_goes_on_from_the_last_checkpoint(small_corpus: Path, tmp_path: Path):
    cfg = tiny_config(small_corpus, tmp_path, "training.epochs=1000")
    run = Run.create(cfg)
    handle = start_run(run, background="process")
    checkpoint = wait_for(lambda: next((e for e in run.events("checkpoint") if e["kind"] == "last"), None), 120,
                          "the first last.pt")
    os.kill(handle.process.pid, signal.SIGKILL)
    wait_for(lambda: run.status["state"] == "interrupted", 10, "the run to count as interrupted")
    saved = torch.load(run.last_checkpoint, weights_only=False)["step"]
    assert saved >= checkpoint["step"]

    run.override_training([f"training.max_steps={saved + 3}"])
    assert train(run, resume=True)["state"] == "finished"
    assert any(f"resumed from last.pt at step {saved}" in e["message"] for e in run.events("log"))
    assert [e["step"] for e in run.events("step")][-3:] == [saved + 1, saved + 2, saved + 3]
    assert torch.load(run.last_checkpoint, weights_only=False)["step"] == saved + 3


# --- stop, refusals, failures ------------------------------------------------------------------------------------

@pytest.mark.parametrize("background", ["thread", "process"])
def test_stop_stops_within_seconds_and_leaves_a_loadable_checkpoint(small_corpus, tmp_path, background):
    run = Run.create(tiny_config(small_corpus, tmp_path, "training.epochs=1000"))
    handle = start_run(run, background=background)
    wait_for(lambda: run.events("step"), 120, "the first step")
    started = time.monotonic()
    status = handle.stop(timeout=30)
    assert time.monotonic() - started < 10
    assert status["state"] == "stopped" and not handle.alive and not run.stop_requested()
    assert torch.load(run.last_checkpoint, weights_only=False)["step"] == status["step"] > 0
    assert Transcriber.from_checkpoint(run.last_checkpoint).transcribe(small_corpus / "wavs" / "syn-00001.wav")


def test_a_second_start_is_refused_while_a_run_trains(small_corpus, tmp_path):
    run = Run.create(tiny_config(small_corpus, tmp_path, "training.epochs=1000"))
    handle = start_run(run, background="process")
    try:
        with pytest.raises(RunAlreadyActive, match="already running"):
            start_run(run, background="process")
        other = Run.create(tiny_config(small_corpus, tmp_path))
        with pytest.raises(RunAlreadyActive, match=f"run {run.id} is training"):
            start_run(other, background="thread", exclusive=True)
    finally:
        assert stop_run(run.id, root=tmp_path, timeout=60)["state"] == "stopped"
    assert handle.wait(10)["state"] == "stopped"


@register_model("nan-conformer")
class NaNConformer(ConformerCTC):
    """A model whose loss is always NaN, as when the learning rate is far too high."""

    def forward(self, batch: dict) -> torch.Tensor:
        return super().forward(batch) * float("nan")


def test_nan_loss_fails_the_run_with_a_clear_error(small_corpus, tmp_path):
    cfg = tiny_config(small_corpus, tmp_path)
    cfg = load_config(None, [f"datasets.synthetic.path={small_corpus}", f"checkpoint_dir={tmp_path}",
                             "available_models=[conformer, nan-conformer]", "model=nan-conformer",
                             f"models.nan-conformer={json.dumps(cfg['models']['conformer'])}",
                             "training.eval_utterances=0", "training.batch_size=2"])
    run = Run.create(cfg)
    status = train(run)
    assert status["state"] == "failed"
    assert status["error"] == "loss is NaN at step 1; lower training.learning_rate"
    assert len([e for e in run.events("log") if e["level"] == "warning"]) == 10
    assert not run.checkpoints()


def test_a_full_disk_fails_the_run_and_keeps_the_previous_checkpoint(small_corpus, tmp_path, monkeypatch):
    run = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=2"))
    assert train(run)["state"] == "finished"
    good = run.last_checkpoint.read_bytes()

    real_save = torch.save

    def save_until_disk_fills(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_until_disk_fills)
    run.override_training(["training.max_steps=4"])
    status = train(run, resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert status["state"] == "failed" and "disk full while writing" in status["error"]
    assert run.last_checkpoint.read_bytes() == good
    assert not list(run.path.glob(".*.tmp"))


def test_a_stale_status_of_a_dead_process_reads_as_interrupted(tmp_path, small_corpus):
    run = Run.create(tiny_config(small_corpus, tmp_path))
    run.write_status(state="running", pid=2 ** 22 + 12345, hostname=os.uname().nodename)
    assert run.status["state"] == "interrupted" and not run.is_active


def test_torchrun_trains_one_run_on_two_processes_with_ddp(small_corpus, tmp_path):
    """`torchrun --nproc_per_node=2 -m asr_poc.training.worker RUN` (gloo on CPU): each rank takes half the batches."""
    import subprocess
    import sys

    cfg = tiny_config(small_corpus, tmp_path, "training.epochs=1", "training.num_threads=1")
    run = Run.create(cfg)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "asr_poc.training.worker",
                             str(run.path)], capture_output=True, text=True, timeout=300)
    # the ranks' own output comes first; torchrun's summary of who failed last
    assert result.returncode == 0, result.stderr[:3000] + "\n...\n" + result.stderr[-1500:]
    durations = load_dataset("synthetic", run.config["datasets"]["synthetic"], "train").durations()
    one_process = len(DurationBucketSampler(durations, 8))
    steps = run.events("step")
    assert run.status["state"] == "finished" and steps
    assert len(steps) == one_process // 2  # the batches are shared out: half the steps of one process
    assert steps[0]["audio_seconds_per_second"] > 0 and any("x 2" in e["message"] for e in run.events("log"))
    assert torch.load(run.last_checkpoint, weights_only=False)["step"] == len(steps)


def test_resume_is_exact_with_batches_by_duration(small_corpus: Path, tmp_path: Path):
    """training.batch_seconds: 7 steps in one go, and 3 steps + resume (inside the first epoch) for 4 more, give the
    same weights; the batches hold at most that many seconds of padded audio."""
    by_duration = ("training.batch_seconds=60", "training.epochs=100")
    straight = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=7", *by_duration))
    assert train(straight)["state"] == "finished"
    split = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=3", *by_duration))
    assert train(split)["state"] == "finished"
    split.override_training(["training.max_steps=7"])
    assert train(split, resume=True)["state"] == "finished"

    durations = load_dataset("synthetic", split.config["datasets"]["synthetic"], "train").durations()
    sampler = DynamicBucketingSampler(durations, 60, seed=split.config["training"]["seed"])
    assert 3 < len(sampler) < 7, "the resume falls inside the first epoch and the run crosses into the second"
    assert all(max(durations[i] for i in b) * len(b) <= 60 for b in sampler.batches())
    assert any("batches an epoch of 60 s" in e["message"] for e in split.events("log"))
    assert any("resumed from last.pt at step 3 (epoch 1, batch 3" in e["message"] for e in split.events("log"))
    a, b = weights(straight.last_checkpoint), weights(split.last_checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
