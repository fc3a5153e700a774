"""The training panel in Python: button states, a real run in a separate process, refusal of a second Start."""
from __future__ import annotations

from pathlib import Path

import pytest

from asr_poc.runs import Run, list_runs
from asr_poc.ui.training_panel import TrainingPanel, button_states
from conftest import TINY_MODEL, wait_for


def panel_overrides(corpus: Path, root: Path, *extra: str) -> list[str]:
    return [f"datasets.synthetic.path={corpus}", f"checkpoint_dir={root}", "training.eval_utterances=4",
            "training.warmup_steps=2", *TINY_MODEL, *extra]


@pytest.mark.parametrize("state, has_last, expected", [
    (None, False, {"start": True, "stop": False, "resume": False}),
    ("created", False, {"start": True, "stop": False, "resume": False}),
    ("running", True, {"start": False, "stop": True, "resume": False}),
    ("stopping", True, {"start": False, "stop": False, "resume": False}),
    ("stopped", True, {"start": True, "stop": False, "resume": True}),
    ("interrupted", True, {"start": True, "stop": False, "resume": True}),
    ("failed", False, {"start": True, "stop": False, "resume": False}),
    ("finished", True, {"start": True, "stop": False, "resume": True}),
])
def test_button_states_follow_the_run(state, has_last, expected):
    assert button_states(state, has_last) == expected


def test_start_watch_refuse_stop_resume(small_corpus: Path, tmp_path: Path):
    """Start trains in a separate process and the curves fill; a second panel's Start is refused with a message;
    Stop leaves the run stopped with last.pt; Resume continues it."""
    root = tmp_path / "runs"
    overrides = panel_overrides(small_corpus, root, "training.batch_size=4")
    panel = TrainingPanel(overrides=overrides, background="process")
    other = TrainingPanel(overrides=overrides, background="process", discover_every=3600)
    try:
        assert panel.run is None and not panel.start_button.disabled and panel.stop_button.disabled
        panel.epochs.value = 1000
        run = panel.start()
        assert run is not None and panel.run == run
        assert run.config["training"]["epochs"] == 1000 and run.config["training"]["batch_size"] == 4

        # the other dashboard has not noticed yet: its Start is enabled, and refused
        assert not other.start_button.disabled
        assert other.start() is None
        assert "refused" in other.message.value and run.id in other.message.value
        assert len(list_runs(root)) == 1, "a refused Start leaves no run folder behind"
        assert other.run == run, "the refusing panel now follows the running run"

        wait_for(lambda: panel.loss_chart.point_count("loss") >= 5, 90, "the loss curve to gain points")
        assert panel.start_button.disabled and not panel.stop_button.disabled and panel.resume_button.disabled
        assert "running" in panel.status_line.value and "step" in panel.progress_label.value

        panel.stop()
        status = wait_for(lambda: run.status if run.status.get("state") == "stopped" else None, 60, "stopped")
        assert run.last_checkpoint.is_file()
        wait_for(lambda: not panel.resume_button.disabled, 10, "Resume to be enabled")
        assert not panel.start_button.disabled and panel.stop_button.disabled
        steps_before = status["step"]

        panel.minutes.value = 0
        assert panel.resume() == run
        wait_for(lambda: run.status.get("step", 0) > steps_before + 2, 90, "the resumed run to make progress")
        panel.stop()
        wait_for(lambda: run.status.get("state") == "stopped", 60, "stopped again")
    finally:
        for p in (panel, other):
            if p.run is not None and p.run.is_active:
                p.run.request_stop()
            p.close()


def test_bad_settings_and_failures_are_shown(small_corpus: Path, tmp_path: Path):
    root = tmp_path / "runs"
    panel = TrainingPanel(overrides=[f"checkpoint_dir={root}", f"datasets.synthetic.path={tmp_path / 'nothing'}"],
                          attach=False)
    try:
        assert panel.start() is None
        assert "cannot start" in panel.message.value and "datasets.synthetic.path" in panel.message.value
        assert list_runs(root) == []
    finally:
        panel.close()


def test_a_new_panel_attaches_to_the_running_run_with_its_history(small_corpus: Path, tmp_path: Path):
    """What a reloaded page does: the newest run (here a finished one made by hand) is shown with every point."""
    from conftest import tiny_config

    run = Run.create(tiny_config(small_corpus, tmp_path / "runs"))
    for n in range(1, 41):
        run.append_event({"type": "step", "step": n, "epoch": 1, "loss": 3.0 / n, "lr": 1e-3})
    run.append_event({"type": "eval", "step": 40, "epoch": 1, "wer": 0.9, "cer": 0.6, "rtf": 0.01})
    run.append_event({"type": "log", "level": "warning", "message": "something to see"})
    run.write_status(state="finished", step=40, epoch=1)
    panel = TrainingPanel(overrides=[f"checkpoint_dir={tmp_path / 'runs'}"])
    try:
        assert panel.run == run
        assert panel.loss_chart.point_count("loss") == 40 and panel.eval_chart.point_count("CER") == 1
        assert "something to see" in panel.log_html.value
        assert "finished" in panel.status_line.value and panel.progress_bar.value == 1.0
    finally:
        panel.close()
