"""asr_poc.app.training: one `start` that every face calls, a request validated once, stop, resume and follow."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from asr_poc.app import training
from asr_poc.app.training import (Adaptation, CurvePoint, ProgressEvent, RunAlreadyActive, RunRequest, StatusEvent,
                                  follow)
from asr_poc.config import ConfigError
from asr_poc.runs import Run, list_runs
from conftest import TINY_MODEL, tiny_config, wait_for


@pytest.fixture
def calls(monkeypatch, tmp_path: Path) -> list:
    """`app.training.start` replaced: records (request, background) and hands back a run folder, training nothing."""
    seen: list = []

    def fake_start(request, background="foreground", on_ready=None):
        seen.append((request, background))
        run = Run.create({"model": "conformer", "dataset": "synthetic"}, root=tmp_path / "made")
        return SimpleNamespace(run=run, status={"state": "finished"}, ended=None)

    monkeypatch.setattr(training, "start", fake_start)
    return seen


def test_a_request_is_one_set_of_config_values_the_named_fields_over_extra():
    request = RunRequest(model="rnn-t", size="xs", minutes=0, batch_size=4,
                         extra={"training.batch_size": 99, "training.seed": 3, "model": "conformer"})
    assert request.config_values("rnn-t") == {"training.batch_size": 4, "training.seed": 3, "model": "rnn-t",
                                              "models.rnn-t.size": "xs", "training.max_minutes": None}
    assert RunRequest(minutes=2.5).config_values("x") == {"training.max_minutes": 2.5}
    assert RunRequest(epochs=3).training_values() == {"training.epochs": 3}
    assert training.parse_sets(["training.seed=3", "datasets.synthetic.augment=null"]) == {
        "training.seed": 3, "datasets.synthetic.augment": None}


def test_a_bad_request_is_refused_with_a_clear_message(small_corpus: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"^size = 'huge': Input should be 'xs', 's' or 'm'$"):
        RunRequest(size="huge")
    with pytest.raises(ConfigError, match=r"batch_size = 'many': Input should be a valid integer"):
        RunRequest(batch_size="many")
    with pytest.raises(ConfigError, match=r"^repeat = 0: Input should be greater than or equal to 1$"):
        Adaptation(repeat=0)
    base = tiny_config(small_corpus, tmp_path)
    with pytest.raises(ConfigError) as refused:
        training.start(RunRequest(base=base, batch_size=0, model="nomodel"))
    assert refused.value.problems[0] == "training.batch_size = 0: Input should be greater than or equal to 1"
    assert refused.value.problems[1].startswith("model = 'nomodel': not in available_models (conformer, ")
    assert list_runs(tmp_path) == [], "a refused request makes no run folder"
    with pytest.raises(ConfigError, match="model: a resumed run keeps its model and data"):
        RunRequest(model="rnn-t", epochs=2).training_values()


def test_cli_train_and_adapt_go_through_start(calls: list, tmp_path: Path):
    from asr_poc.cli import main

    assert main(["train", "--background", "--model", "rnn-t", "--minutes", "2", "--root", str(tmp_path),
                 "--set", "training.seed=3", "--init-from", "a.pt"]) == 0
    assert calls[-1] == (RunRequest(model="rnn-t", minutes=2.0, root=str(tmp_path), init_from="a.pt",
                                    extra={"training.seed": 3}), "process")
    assert main(["adapt", "--from", "b.pt", "--speaker", "anna", "--steps", "7", "--repeat", "4",
                 "--root", str(tmp_path)]) == 0
    assert calls[-1] == (RunRequest(init_from="b.pt", adaptation=Adaptation(speaker="anna", repeat=4), minutes=5.0,
                                    max_steps=7, root=str(tmp_path)), "foreground")


def test_the_training_panels_start_button_goes_through_start(calls: list, tmp_path: Path):
    from asr_poc.ui.training_panel import TrainingPanel

    panel = TrainingPanel(overrides=[f"checkpoint_dir={tmp_path / 'runs'}", "training.seed=5"], attach=False,
                          discover_every=3600)
    try:
        panel.model.value, panel.size.value, panel.batch_size.value = "conformer", "s", 12
        panel.epochs.value, panel.minutes.value = 7, 0
        panel.start_button.click()
        request, background = calls[-1]
        assert background == "process" and "started run" in panel.message.value
        assert (request.model, request.size, request.batch_size, request.epochs, request.minutes) == (
            "conformer", "s", 12, 7, 0)
        assert request.extra == {"checkpoint_dir": str(tmp_path / "runs"), "training.seed": 5}
    finally:
        panel.close()


def test_the_record_tabs_adapt_goes_through_start(calls: list, tmp_path: Path):
    from asr_poc.ui.record_panel import RecordPanel

    panel = RecordPanel(root=tmp_path / "runs", recordings_path=tmp_path / "rec", background="thread")
    try:
        panel.speaker.value = "Cleo"
        panel.checkpoint.options = [("c.pt", "c.pt")]
        panel.checkpoint.value, panel.minutes.value = "c.pt", 2
        assert panel.adapt() is not None
        request, background = calls[-1]
        assert (request.init_from, request.adaptation, request.minutes, background) == (
            "c.pt", Adaptation(speaker="Cleo"), 2.0, "thread")
    finally:
        panel.close()


def test_start_stop_resume_and_follow(small_corpus: Path, tmp_path: Path):
    """A run started in a thread is stopped with a last.pt; a second start meanwhile is refused and leaves no
    folder; resume continues from last.pt to the new limit; follow reads the whole run as typed events."""
    base = tiny_config(small_corpus, tmp_path, "training.batch_size=4")
    handle = training.start(RunRequest(base=base, epochs=1000), background="thread")
    run = handle.run
    try:
        wait_for(lambda: len(run.events("step")) >= 3, 120, "three steps")
        with pytest.raises(RunAlreadyActive, match=f"run {run.id}"):
            training.start(RunRequest(base=base), background="thread")
        assert list_runs(tmp_path) == [run], "the refused start's folder is removed"
    finally:
        status = training.stop(handle, timeout=60)
    assert status["state"] == "stopped" and run.last_checkpoint.is_file()
    stopped_at = status["step"]

    resumed = training.resume(run.id, RunRequest(max_steps=stopped_at + 3), background="thread", root=str(tmp_path))
    assert resumed.wait(120)["state"] == "finished"
    run = Run(run.path)  # config.yaml as resume changed it
    steps = [e["step"] for e in run.events("step")]
    assert steps == list(range(1, stopped_at + 4)) and run.config["training"]["max_steps"] == stopped_at + 3

    events = list(follow(run, interval=0.05))
    assert [p.step for p in events if isinstance(p, CurvePoint) and p.curve == "loss"] == steps
    status_event = [e for e in events if isinstance(e, StatusEvent)][-1]
    assert status_event.state == "finished" and status_event.batches_per_epoch == run.status["batches_per_epoch"] > 1
    assert [e for e in events if isinstance(e, ProgressEvent)][-1].fraction == 1.0
