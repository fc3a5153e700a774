"""The run browser: every run with its summary, incremental reading, overlays of ticked runs, accuracy vs speed."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from asr_poc.runs import Run
from asr_poc.ui.run_browser import RunBrowser
from conftest import tiny_config


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def fake_run(corpus: Path, root: Path, steps: int, cer: float, rtf: float, state: str = "finished") -> Run:
    run = Run.create(tiny_config(corpus, root))
    for n in range(1, steps + 1):
        run.append_event({"type": "step", "step": n, "epoch": 1, "loss": 5.0 / n, "lr": 1e-3})
    run.append_event({"type": "eval", "step": steps, "epoch": 1, "wer": cer * 2, "cer": cer, "rtf": rtf})
    run.write_status(state=state, step=steps, epoch=1, best_cer=cer, best_wer=cer * 2, model="conformer",
                     dataset="synthetic", started=time.time() - 120,
                     pid=dead_pid(), hostname=socket.gethostname())
    return run


def test_lists_runs_overlays_ticked_ones_and_plots_accuracy_against_speed(small_corpus: Path, tmp_path: Path):
    root = tmp_path / "runs"
    first = fake_run(small_corpus, root, 30, cer=0.4, rtf=0.01)
    second = fake_run(small_corpus, root, 50, cer=0.2, rtf=0.02)
    browser = RunBrowser(root=root, refresh_every=None)
    try:
        assert list(browser.rows) and len(browser.table.children) == 2
        row = browser.rows[second.id]
        text = " ".join(c.value for c in row.cells)
        assert second.id in text and "finished" in text and "2m" in text and "0.200" in text and "0.400" in text and "50" in text
        assert browser.selected() == [second.id], "the newest run is ticked to begin with"
        assert browser.loss_chart.point_count(second.id.split("-", 2)[2]) == 50

        browser.select([first.id, second.id])
        assert browser.loss_chart.point_count(first.id.split("-", 2)[2]) == 30
        assert browser.cer_chart.point_count(first.id.split("-", 2)[2]) == 1
        assert sorted(browser.speed_points.x) == [50.0, 100.0] and sorted(browser.speed_points.y) == [0.2, 0.4]

        # a run that appears later (e.g. from the command line) and new events of a known run
        third = fake_run(small_corpus, root, 5, cer=0.5, rtf=0.005, state="running")
        first.append_event({"type": "step", "step": 31, "epoch": 2, "loss": 0.1, "lr": 1e-3})
        browser.refresh()
        assert len(browser.table.children) == 3 and browser.table.children[0] is browser.rows[third.id].box
        assert browser.loss_chart.point_count(first.id.split("-", 2)[2]) == 31, "new events are read incrementally"
        assert "interrupted" in " ".join(c.value for c in browser.rows[third.id].cells), \
            "a 'running' run without a live process shows as interrupted"

        browser.select([])
        assert browser.loss_chart.lines == {}
    finally:
        browser.close()
