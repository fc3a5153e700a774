"""`torchrun --nproc_per_node 2 -m asr_poc train ...` the way people type it: one run for both ranks (gloo, CPU)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr_poc.runs import Run, list_runs
from conftest import TINY_MODEL, tiny_config


def torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def tiny_train_args(corpus: Path, root: Path, *overrides: str) -> list[str]:
    sets = [f"datasets.synthetic.path={corpus}", "training.batch_size=8", "training.eval_utterances=0",
            "training.warmup_steps=2", "datasets.synthetic.augment=null", "training.num_threads=1",
            "training.extra_eval=[]", *TINY_MODEL, *overrides]
    return ["--dataset", "synthetic", "--root", str(root), *[arg for s in sets for arg in ("--set", s)]]


@pytest.mark.slow  # two torchrun launches of two processes each: about 40-60 s on 2 busy cores
def test_torchrun_asr_poc_train_trains_one_run_and_resumes_it(small_corpus, tmp_path):
    """Batches by duration (training.batch_seconds), shared out between the ranks; the count way is
    test_training's torchrun test of the two-step way."""
    result = torchrun("-m", "asr_poc", "train", *tiny_train_args(small_corpus, tmp_path, "training.max_steps=3",
                                                                 "training.batch_seconds=30"))
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list_runs(tmp_path)
    assert len(runs) == 1, f"one run folder for both ranks, found {[r.id for r in runs]}"
    run = runs[0]
    assert result.stdout.split()[0] == str(run.path)  # printed once, by rank 0
    assert run.status["state"] == "finished" and [e["step"] for e in run.events("step")] == [1, 2, 3]
    assert any(e["message"].endswith("batches an epoch of 30 s on cpu x 2") for e in run.events("log"))
    assert torch.load(run.last_checkpoint, weights_only=False)["step"] == 3

    result = torchrun("-m", "asr_poc", "train", "--resume", run.id, "--root", str(tmp_path),
                      "--set", "training.max_steps=5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r.id for r in list_runs(tmp_path)] == [run.id], "--resume joins the run, makes no new one"
    assert [e["step"] for e in run.events("step")] == [1, 2, 3, 4, 5]
    assert any("resumed from last.pt at step 3" in e["message"] for e in run.events("log"))
    assert Run(run.path).status["state"] == "finished"


@pytest.mark.slow  # one torchrun launch of two processes
def test_torchrun_trains_the_rnnt_warmup_then_the_transducer(small_corpus, tmp_path):
    """rnn-t's CTC warm-up leaves the predictor and joiner out of the loss: the model says so and the trainer has DDP
    find them, so both ranks step through the warm-up (steps 1-2) into joint steps (3), which train the transducer."""
    from test_rnnt_ctc_warmup import TINY

    rnnt = [f"models.rnn-t.{key}={value}" for key, value in TINY.items()]
    result = torchrun("-m", "asr_poc", "train", "--model", "rnn-t",
                      *tiny_train_args(small_corpus, tmp_path, "training.max_steps=3",
                                       "models.rnn-t.ctc_warmup_steps=2", *rnnt))
    assert result.returncode == 0, result.stderr[-3000:]
    run = list_runs(tmp_path)[0]
    assert run.status["state"] == "finished" and [e["step"] for e in run.events("step")] == [1, 2, 3]
    checkpoint = torch.load(run.last_checkpoint, weights_only=False)
    assert checkpoint["model_name"] == "rnn-t" and bool(checkpoint["state_dict"]["transducer_trained"])


@pytest.mark.slow
def test_torchrun_train_is_refused_on_every_rank_while_the_folder_is_locked(small_corpus, tmp_path):
    from asr_poc.training.run_lock import RunsFolderLock

    holder = Run.create(tiny_config(small_corpus, tmp_path))
    lock = RunsFolderLock(tmp_path).acquire(holder.id)
    try:
        result = torchrun("-m", "asr_poc", "train", *tiny_train_args(small_corpus, tmp_path, "training.max_steps=2"),
                          timeout=120)
    finally:
        lock.release()
    assert result.returncode != 0
    assert result.stderr.count(f"run {holder.id} is training") == 2, result.stderr[-3000:]  # one line a rank
    assert [r.id for r in list_runs(tmp_path)] == [holder.id], "the refused run's folder is removed"


def test_background_is_refused_under_torchrun(monkeypatch, tmp_path, capsys):
    from asr_poc.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--background", "--root", str(tmp_path)]) == 2
    assert "--background does not go with torchrun" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "no run folder made"
