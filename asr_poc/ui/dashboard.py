"""The dashboard: a title, one sentence of help, and the training, runs and test panels in tabs.

`notebooks/dashboard.ipynb` (package data: `asr_poc.paths.DASHBOARD_NOTEBOOK`) only calls `dashboard()`; Voila
serves that notebook without its code (`asr-poc dashboard`). Runs start as separate processes, so closing the page
does not end training; they find the project's folders as this kernel does (`asr_poc.paths.project_root`).
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

import ipywidgets as w

from .data_browser import DataBrowser
from .record_panel import RecordPanel
from .run_browser import RunBrowser
from .test_panel import TestPanel
from .training_panel import TrainingPanel

STYLE = """<style>
.asr-dashboard .asr-transcript { font-size: 1.1em; }
.asr-dashboard .widget-tab > .p-TabBar .p-TabBar-tab, .asr-dashboard .lm-TabBar-tab { min-width: 120px; }
.asr-dashboard code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
</style>"""
TITLE = "<h2 style='margin:4px 0'>asr-poc: speech recognition workbench</h2>"
HELP = ("<p style='margin:0 0 8px 0;color:#444'>Train a model and watch its curves live in <b>Training</b>, "
        "compare runs in <b>Runs</b>, try a checkpoint on a file or your own voice in <b>Test</b>, and record "
        "sentences and adapt a model to your voice in <b>Record</b>, and browse the utterances of a data set in "
        "<b>Data</b>.</p>")


class Dashboard(w.VBox):
    """The three panels in tabs; the runs and test tabs re-read the runs folder when they are opened."""

    def __init__(self, config_path: Optional[str] = None, overrides: Iterable[str] = (),
                 background: str = "process"):
        overrides = tuple(overrides)
        self.training = TrainingPanel(config_path, overrides, background=background)
        self.runs = RunBrowser(self.training.root)
        self.test = TestPanel(self.training.root, preload=False)  # torch and the model load when the tab opens
        self.record = RecordPanel(self.training.root, config_path, overrides, background=background,
                                  on_adapt=self.training.attach)  # torch loads when the tab opens
        self.data = DataBrowser(config_path, overrides)  # reads nothing (and imports no torch) until the tab opens
        # The runs and test tabs get their content when first opened: a chart drawn in a hidden tab has no size.
        self.pages = [w.Box([self.training]), w.Box([]), w.Box([]), w.Box([]), w.Box([])]
        self.tabs = w.Tab(self.pages, titles=("Training", "Runs", "Test", "Record", "Data"))
        self.tabs.observe(self._tab_changed, "selected_index")
        super().__init__([w.HTML(STYLE + TITLE + HELP), self.tabs], layout=w.Layout(width="100%"))
        self.add_class("asr-dashboard")

    def _tab_changed(self, change: dict) -> None:
        index = change["new"]
        if index is None:
            return
        panel = (self.training, self.runs, self.test, self.record, self.data)[index]
        if panel is not self.training:
            panel.refresh()
        if not self.pages[index].children:
            self.pages[index].children = [panel]

    def close(self) -> None:
        for panel in (self.training, self.runs, self.test, self.record, self.data):
            panel.close()
        super().close()


def dashboard(config_path: Optional[str] = None, overrides: Iterable[str] = (),
              background: str = "process") -> Dashboard:
    """Build the dashboard (display it as a cell's last expression).

    `config_path` defaults to $ASR_POC_CONFIG (a YAML file merged over configs/default.yaml), which is how
    `asr-poc dashboard --config FILE` passes one through Voila.
    """
    return Dashboard(config_path or os.environ.get("ASR_POC_CONFIG") or None, overrides, background=background)
