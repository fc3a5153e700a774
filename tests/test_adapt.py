"""Adapting to a voice: training.init_checkpoint, the adaptation run, and (slow) that a stand-in voice's CER falls."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_poc.adapt import (ADAPTATION_FILE, DEFAULT_LEARNING_RATE, MODEL_LEARNING_RATE, STAND_IN_SPEAKER,
                           STAND_IN_VOICE, adaptation_config, adaptation_summary, corpus_voices, stand_in_recordings)
from asr_poc.app.training import Adaptation, RunRequest, start
from asr_poc.datasets.recordings import RecordingStore
from asr_poc.plugins import load_dataset
from asr_poc.runs import Run
from asr_poc.training.trainer import train
from conftest import tiny_config

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet".split()


def tone(seconds: float = 1.2, freq: float = 300.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_a_new_run_starts_from_the_init_checkpoint_weights_and_vocabulary(tiny_run: Run, small_corpus: Path,
                                                                         tmp_path: Path):
    start = torch.load(tiny_run.last_checkpoint, weights_only=False)
    cfg = tiny_config(small_corpus, tmp_path, "training.max_steps=1", "training.learning_rate=1e-9",
                      f"training.init_checkpoint={tiny_run.last_checkpoint}")
    run = Run.create(cfg)
    assert train(run)["state"] == "finished"
    after = torch.load(run.last_checkpoint, weights_only=False)
    assert after["config"]["vocab"] == start["config"]["vocab"] and after["step"] == 1
    for name, tensor in start["state_dict"].items():  # one step at lr 1e-9 from the same weights
        if "running_" in name or "num_batches" in name or "prior_mean" in name:  # running statistics (batch norm,
            # the log-mel normalizer's prior) move in any training step
            continue
        assert torch.allclose(tensor.float(), after["state_dict"][name].float(), atol=1e-6), name
    assert any("initialised from" in e.get("message", "") for e in run.events())


def test_an_init_checkpoint_of_another_model_or_no_file_fails_clearly(tiny_run: Run, small_corpus: Path,
                                                                      tmp_path: Path):
    run = Run.create(tiny_config(small_corpus, tmp_path, "model=rnn-t",
                                 f"training.init_checkpoint={tiny_run.last_checkpoint}"))
    status = train(run)
    assert status["state"] == "failed" and "holds a 'conformer' model" in status["error"]
    run = Run.create(tiny_config(small_corpus, tmp_path, f"training.init_checkpoint={tmp_path / 'none.pt'}"))
    status = train(run)
    assert status["state"] == "failed" and "checkpoint not found" in status["error"]


def test_adaptation_run_mixes_the_recordings_and_records_before_and_after(tiny_run: Run, small_corpus: Path,
                                                                         tmp_path: Path):
    store = RecordingStore(tmp_path / "rec")
    with pytest.raises(ValueError, match="no training recordings of anna"):
        start(RunRequest(base=tiny_config(small_corpus, tmp_path, f"datasets.recordings.path={tmp_path / 'rec'}"),
                         init_from=str(tiny_run.last_checkpoint), adaptation=Adaptation(speaker="anna"),
                         root=str(tmp_path)))
    for i, word in enumerate(WORDS):
        store.add(tone(freq=200 + 40 * i), f"say {word}", "anna")
    store.add(tone(), "somebody else", "bob")
    base = tiny_config(small_corpus, tmp_path, f"datasets.recordings.path={tmp_path / 'rec'}")
    cfg = adaptation_config(base, tiny_run.last_checkpoint, speaker="anna", minutes=3, repeat=4)
    assert cfg["dataset"] == "mix" and cfg["training"]["max_minutes"] == 3
    assert cfg["training"]["init_checkpoint"] == str(tiny_run.last_checkpoint)
    parts = cfg["datasets"]["mix"]["parts"]
    assert [(p["name"], p["repeat"]) for p in parts] == [("synthetic", 1), ("recordings", 4)]
    assert parts[1]["speakers"] == ["anna"] and parts[0]["path"] == str(small_corpus)
    assert cfg["datasets"]["recordings"]["speakers"] == ["anna"]
    assert {"recordings", "synthetic"} <= set(cfg["training"]["extra_eval"])
    auto = adaptation_config(base, tiny_run.last_checkpoint, speaker="anna")["datasets"]["mix"]["parts"][1]
    assert auto["repeat"] == 8  # 8 clips beside ~54 synthetic ones: the floor
    assert cfg["training"]["spec_augment"] is False and base["training"]["spec_augment"] is True  # measured default
    recipe = adaptation_config(base, tiny_run.last_checkpoint, speaker="anna", share=0.9, lr_schedule="cosine",
                               spec_augment=False, learning_rate=5e-4)
    clips = 8 * recipe["datasets"]["mix"]["parts"][1]["repeat"]  # anna's 8 train clips, repeated
    utterances = len(load_dataset("synthetic", {"path": str(small_corpus)}, "train"))
    assert 0.85 < clips / (clips + utterances) < 0.95  # about nine in ten items of an epoch are the recordings
    assert (recipe["training"]["lr_schedule"], recipe["training"]["spec_augment"],
            recipe["training"]["learning_rate"]) == ("cosine", False, 5e-4)
    assert cfg["training"]["learning_rate"] == DEFAULT_LEARNING_RATE  # a conformer's
    whisper_run = tmp_path / "whisper-run"  # a whisper-ctc checkpoint adapts at its own, gentler rate
    whisper_run.mkdir()
    shutil.copy(tiny_run.last_checkpoint, whisper_run / "last.pt")
    (whisper_run / "config.yaml").write_text("model: whisper-ctc\n")
    assert adaptation_config(base, whisper_run / "last.pt", speaker="anna", check_data=False)["training"][
        "learning_rate"] == MODEL_LEARNING_RATE["whisper-ctc"] < DEFAULT_LEARNING_RATE
    with pytest.raises(ValueError, match="between 0 and 1"):
        adaptation_config(base, tiny_run.last_checkpoint, speaker="anna", share=1.0)
    augmented = adaptation_config(base, tiny_run.last_checkpoint, speaker="anna", augment_recordings=True)
    recordings_part = augmented["datasets"]["mix"]["parts"][1]
    assert recordings_part["augment"]["speed"] > 0 and recordings_part["augment"].get("ramp_utterances", 0) == 0
    mixed = load_dataset("mix", augmented["datasets"]["mix"], "train")
    assert mixed.parts[1].augmenter is not None and mixed.parts[1].augmenter.strength() == 1.0

    handle = start(RunRequest(base=base, init_from=str(tiny_run.last_checkpoint), adaptation=Adaptation(speaker="anna"),
                              minutes=0, max_steps=3, root=str(tmp_path / "runs")))  # minutes=0: no time limit
    run = handle.run
    assert run.status["state"] == "finished", run.status
    summary = adaptation_summary(run)
    assert summary["speaker"] == "anna" and summary["before"]["utterances"] == 2  # anna-0005, anna-0010
    assert summary["after"]["cer"] == run.status["best_cer"]
    first = run.events("extra_eval")[0]
    assert first["before"] and first["step"] == 0 and first["cer"] == summary["before"]["cer"]
    assert json.loads((run.path / ADAPTATION_FILE).read_text())["init_checkpoint"] == str(tiny_run.last_checkpoint)
    assert adaptation_summary(tiny_run) is None


# --- the offline demonstration (slow) --------------------------------------------------------------------------

ADAPT_STEPS = 60


def test_the_stand_in_speaks_a_voice_the_corpus_never_had(small_corpus: Path, tmp_path: Path):
    store = stand_in_recordings(tmp_path / "rec", train=2, test=1, corpus=small_corpus)
    assert store.counts(STAND_IN_SPEAKER) == {"train": 2, "dev": 0, "test": 1}
    assert f"espeak:{STAND_IN_VOICE}" not in corpus_voices(small_corpus) and corpus_voices(small_corpus)
    assert all(r.seconds > 1 for r in store.list(STAND_IN_SPEAKER))
    with pytest.raises(ValueError, match="no voice variant 'Nobody'"):
        stand_in_recordings(tmp_path / "x", voice="en-us+Nobody", train=1, test=0)
    used = next(v for v in sorted(corpus_voices(small_corpus)) if v.startswith("espeak:")).split(":", 1)[1]
    with pytest.raises(ValueError, match="already has the voice"):
        stand_in_recordings(tmp_path / "y", voice=used, train=1, test=0, corpus=small_corpus)


@pytest.mark.slow
def test_a_voice_the_corpus_never_had_is_learned_from_forty_recordings(trained_run: Run, learning_corpus: Path,
                                                                        tmp_path: Path):
    """40 sentences of a stand-in voice are its recordings, 10 others its test; CER on those 10 falls, and the
    synthetic test split loses at most 10% (the issue's limit)."""
    from asr_poc.config import load_config
    from asr_poc.evaluation import evaluate
    from asr_poc.models.interface import BaseASRModel

    store = stand_in_recordings(tmp_path / "rec", corpus=learning_corpus)
    assert store.counts(STAND_IN_SPEAKER) == {"train": 40, "dev": 0, "test": 10}

    base = load_config(trained_run.config_path, [f"datasets.recordings.path={tmp_path / 'rec'}",
                                                 "training.eval_utterances=10"])
    started = time.monotonic()
    handle = start(RunRequest(base=base, init_from=str(trained_run.best_checkpoint),
                              adaptation=Adaptation(speaker=STAND_IN_SPEAKER), minutes=0, max_steps=ADAPT_STEPS,
                              root=str(tmp_path / "runs")))
    minutes = (time.monotonic() - started) / 60
    assert handle.run.status["state"] == "finished", handle.run.status
    summary = adaptation_summary(handle.run)

    synthetic_test = load_dataset("synthetic", {"path": str(learning_corpus)}, "test")
    voice_test = load_dataset("recordings", {"path": str(tmp_path / "rec"), "speakers": [STAND_IN_SPEAKER]}, "test")
    figures = {}
    for name, checkpoint in (("before", trained_run.best_checkpoint), ("after", handle.run.last_checkpoint)):
        model = BaseASRModel.from_checkpoint(checkpoint)
        figures[name] = {"voice": evaluate(model, voice_test)["cer"], "synthetic": evaluate(model, synthetic_test)["cer"]}
    print(f"\nadaptation to {STAND_IN_VOICE}: {ADAPT_STEPS} steps in {minutes:.1f} min; {json.dumps(figures)}")
    assert summary["before"]["cer"] == pytest.approx(figures["before"]["voice"], abs=1e-6)
    # measured from a 203-step model (benchmarks/README.md, Adaptation): 0.412 -> 0.334, synthetic 0.422 -> 0.395
    assert figures["after"]["voice"] <= 0.9 * figures["before"]["voice"]
    assert figures["after"]["synthetic"] <= 1.1 * figures["before"]["synthetic"] + 0.02


def test_cli_adapt_says_what_is_missing(tiny_run: Run, small_corpus: Path, tmp_path: Path, capsys):
    from asr_poc.cli import _train_request, build_parser, main

    code = main(["adapt", "--from", str(tiny_run.last_checkpoint), "--speaker", "nobody", "--steps", "2",
                 "--root", str(tmp_path / "runs"), "--set", f"datasets.recordings.path={tmp_path / 'rec'}"])
    assert code == 1 and "no training recordings of nobody" in capsys.readouterr().err
    args = build_parser().parse_args(["train", "--init-from", "x.pt"])
    assert _train_request(args).config_values("conformer")["training.init_checkpoint"] == "x.pt"
