"""Run browser: every run under `checkpoints/` (from the dashboard, a notebook or the command line) with its state,
model, data set, best dev CER/WER, real-time factor and age; ticked runs have their curves overlaid, and all runs
with an evaluation are placed on an accuracy-versus-speed plot.
"""
from __future__ import annotations

import html
import os
import threading
import time
from pathlib import Path
from typing import Optional

import bqplot as bq
import ipywidgets as w

from ..app.runs import Run, accuracy_speed_points, default_root, format_age, list_runs
from ..app.settings import extra_eval_names, load_config
from .charts import PALETTE, LineChart
from .error_panel import ErrorPanel
from .history import RunHistory
from .style import COLORS

COLUMNS = [("", "32px"), ("run", "290px"), ("state", "90px"), ("model", "90px"), ("dataset", "90px"),
           ("steps", "60px"), ("best CER", "75px"), ("best WER", "75px"), ("RTF", "70px"), ("age", "50px")]
STATE_COLORS = {"running": COLORS["success"], "stopping": COLORS["warning"], "failed": COLORS["error"],
                "interrupted": COLORS["error"]}
EXTRA_COLUMN_WIDTH = "90px"


def table_columns(extra_names: list[str]) -> list[tuple[str, str]]:
    """COLUMNS with one `<set> CER` column per extra evaluation set (training.extra_eval) after best WER."""
    at = [name for name, _ in COLUMNS].index("RTF")
    return COLUMNS[:at] + [(f"{name} CER", EXTRA_COLUMN_WIDTH) for name in extra_names] + COLUMNS[at:]


def run_summary(run: Run, history: RunHistory, now: Optional[float] = None) -> dict:
    """One row of the table: what status.json and the events say about a run."""
    now = time.time() if now is None else now
    status = run.status
    best = history.best_eval
    started = status.get("started") or status.get("created")
    age = now - float(started) if started else now - run.path.stat().st_mtime
    return {"run": run.id, "state": status.get("state"), "model": status.get("model"),
            "dataset": status.get("dataset"), "steps": max(int(status.get("step") or 0), history.last_step),
            "best_cer": status.get("best_cer", best and best["cer"]),
            "best_wer": status.get("best_wer", best and best["wer"]),
            "rtf": best["rtf"] if best else None, "age": age,
            "extra_cer": {name: e.get("cer") for name, e in history.extra_at_best().items()}}  # at best dev CER


def short_label(run_id: str) -> str:
    """`20261125-113742-conformer-52a8` -> `conformer-52a8` (a legend entry)."""
    parts = run_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0].isdigit() else run_id


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


class _Row:
    """The widgets of one table row, kept across refreshes so a tick survives them."""

    def __init__(self, run_id: str, on_tick, extra_names: tuple[str, ...] = ()):
        self.extra_names = extra_names
        self.tick = w.Checkbox(value=False, indent=False, layout=w.Layout(width=COLUMNS[0][1]))
        self.tick.add_class("asr-run-tick")
        self.tick.observe(lambda _: on_tick(), "value")
        self.cells = [w.HTML(layout=w.Layout(width=width, overflow="hidden"))
                      for _, width in table_columns(list(extra_names))[1:]]
        self.box = w.HBox([self.tick, *self.cells], layout=w.Layout(align_items="center"))
        self.box.add_class("asr-run-row")

    def update(self, s: dict) -> None:
        state = html.escape(str(s["state"]))
        values = [f"<code>{html.escape(s['run'])}</code>",
                  f"<span style='color:{STATE_COLORS.get(s['state'], '#333')}'>{state}</span>",
                  html.escape(str(s["model"] or "–")), html.escape(str(s["dataset"] or "–")), str(s["steps"]),
                  _fmt(s["best_cer"]), _fmt(s["best_wer"]),
                  *[_fmt(s.get("extra_cer", {}).get(name)) for name in self.extra_names],
                  _fmt(s["rtf"], 4), format_age(s["age"])]
        for cell, value in zip(self.cells, values):
            if cell.value != value:
                cell.value = value


class RunBrowser(w.VBox):
    """The runs tab. `refresh()` re-reads the runs folder; it also runs every `refresh_every` seconds."""

    def __init__(self, root: Optional[os.PathLike] = None, config_path: Optional[str] = None,
                 overrides: tuple[str, ...] = (), refresh_every: Optional[float] = 5.0,
                 extra_eval: Optional[list[str]] = None):
        self.root = Path(root) if root else default_root(load_config(config_path, list(overrides), check_data=False))
        # a CER column per real-speech set (training.extra_eval), and a choice of CER for the speed plot
        self.extra_names = tuple(extra_eval_names(config_path, overrides) if extra_eval is None else extra_eval)
        self.histories: dict[str, tuple[int, RunHistory]] = {}
        self.rows: dict[str, _Row] = {}
        self.runs: dict[str, Run] = {}
        self.summaries: dict[str, dict] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()

        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.count = w.HTML("")
        header = w.HBox([w.HTML(f"<b>{html.escape(name)}</b>", layout=w.Layout(width=width))
                         for name, width in table_columns(list(self.extra_names))])
        self.table = w.VBox([], layout=w.Layout(max_height="320px", overflow_y="auto"))
        self.table.add_class("asr-run-table")
        self.loss_chart = LineChart("training loss of the ticked runs")
        self.cer_chart = LineChart("dev CER of the ticked runs", markers=True)
        self.speed_chart = self._speed_figure()
        self.speed_source = w.Dropdown(options=[("dev (or bench)", None), *[(name, name) for name in self.extra_names]],
                                       value=None, description="CER on", layout=w.Layout(width="260px"))
        self.speed_source.observe(lambda _: self._draw_speed(), "value")
        charts = w.GridBox([self.loss_chart.figure, self.cer_chart.figure, w.VBox([self.speed_source,
                                                                                    self.speed_chart])],
                           layout=w.Layout(grid_template_columns="repeat(auto-fit, minmax(300px, 1fr))",
                                           width="100%"))
        help_line = w.HTML("<span style='color:#666'>Tick runs to overlay their curves. Runs started from the "
                           "command line or a notebook appear here too.</span>")
        self.errors = ErrorPanel(self.root)  # worst utterances and confusions from `asr-poc eval --details`
        super().__init__([w.HBox([self.refresh_button, self.count], layout=w.Layout(align_items="center")),
                          help_line, header, self.table, charts, self.errors], layout=w.Layout(width="100%"))
        self.add_class("asr-run-browser")
        self.refresh()
        if refresh_every:
            threading.Thread(target=self._loop, args=(refresh_every,), daemon=True, name="asr-poc-runs").start()

    def _speed_figure(self) -> bq.Figure:
        self.speed_x, self.speed_y = bq.LinearScale(), bq.LinearScale()
        scales = {"x": self.speed_x, "y": self.speed_y}

        def scatter(color: str, label: str) -> bq.Scatter:
            return bq.Scatter(x=[], y=[], names=[], display_names=False, colors=[color], scales=scales,
                              default_size=48, labels=[label], display_legend=True,
                              tooltip=bq.Tooltip(fields=["name", "x", "y"], labels=["", "RTFx", "CER"],
                                                 formats=["", ".0f", ".3f"]))

        self.speed_points = scatter(PALETTE[0], "runs")
        self.baseline_points = scatter(PALETTE[1], "baseline")
        axes = [bq.Axis(scale=self.speed_x, label="speed: RTFx (audio seconds per compute second)",
                        tick_format=",.0f", num_ticks=5),
                bq.Axis(scale=self.speed_y, side="left", label="CER", tick_format=".2f", num_ticks=5)]
        return bq.Figure(marks=[self.speed_points, self.baseline_points], axes=axes,
                         title="accuracy vs speed (all runs)", legend_location="top-right",
                         animation_duration=0, fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 16},
                         layout=w.Layout(width="100%", height="240px", min_width="260px"))

    def speed_points_of_runs(self) -> list[dict]:
        """Accuracy-vs-speed points: `asr-poc bench` figures where a run was benchmarked (and the baseline),
        else the run's own best dev CER and the speed of its last dev evaluation. With a real-speech set chosen
        in `speed_source`: bench figures on that set, else the run's CER on it at its best dev evaluation."""
        dataset = self.speed_source.value
        try:
            return accuracy_speed_points(self.root, dataset=dataset, exclude_datasets=self.extra_names)
        except Exception:  # unreadable results: the runs' own figures
            return [{"kind": "run", "label": s["run"], "run": s["run"],
                     "cer": s["extra_cer"].get(dataset) if dataset else s["best_cer"],
                     "rtfx": 1 / s["rtf"] if s["rtf"] else None} for s in self.summaries.values()]

    # --- reading runs ------------------------------------------------------------------------------------------
    def history(self, run: Run) -> RunHistory:
        """The run's history, read incrementally (only new events since the last refresh)."""
        offset, history = self.histories.get(run.id, (0, RunHistory()))
        events, offset = run.read_events(offset)
        history.extend(events)
        self.histories[run.id] = (offset, history)
        return history

    def refresh(self, speed: bool = True) -> None:
        """Re-read the runs folder; `speed=False` skips the accuracy-vs-speed plot (it reads every run's evals)."""
        with self._lock:
            runs = list_runs(self.root)
            self.runs = {r.id: r for r in runs}
            now = time.time()
            for run in runs:
                summary = run_summary(run, self.history(run), now)
                self.summaries[run.id] = summary
                if run.id not in self.rows:
                    self.rows[run.id] = _Row(run.id, self._ticks_changed, self.extra_names)
                self.rows[run.id].update(summary)
            order = [self.rows[r.id].box for r in runs]
            if list(self.table.children) != order:
                self.table.children = order
            if runs and not self.selected():
                self.rows[runs[0].id].tick.value = True  # show something: the newest run
            self.count.value = f"{len(runs)} run{'s' if len(runs) != 1 else ''} in <code>{html.escape(str(self.root))}</code>"
            self._draw()
            if speed:
                self._draw_speed()
                self.errors.refresh()  # new `asr-poc eval --details` files

    def selected(self) -> list[str]:
        return [run_id for run_id, row in self.rows.items() if row.tick.value and run_id in self.runs]

    def select(self, run_ids: list[str]) -> None:
        with self._lock:
            for run_id, row in self.rows.items():
                row.tick.value = run_id in run_ids

    def _ticks_changed(self) -> None:
        with self._lock:
            self._draw()

    def _draw(self) -> None:
        chosen = self.selected()
        for i, run_id in enumerate(chosen):
            history = self.histories.get(run_id, (0, RunHistory()))[1]
            color = PALETTE[i % len(PALETTE)]
            label = short_label(run_id)
            self.loss_chart.set_line(label, history.steps, history.losses, color=color)
            self.cer_chart.set_line(label, history.eval_steps, history.cers, color=color)
        labels = [short_label(run_id) for run_id in chosen]
        self.loss_chart.keep_only(labels)
        self.cer_chart.keep_only(labels)

    def _draw_speed(self) -> None:
        points = [p for p in self.speed_points_of_runs() if p.get("rtfx") and p.get("cer") is not None]
        for mark, kind in ((self.speed_points, ("run", "checkpoint")), (self.baseline_points, ("baseline",))):
            chosen = [p for p in points if p["kind"] in kind]
            with mark.hold_sync():
                mark.x = [float(p["rtfx"]) for p in chosen]
                mark.y = [float(p["cer"]) for p in chosen]
                mark.names = [str(p["label"]) for p in chosen]

    def _loop(self, every: float) -> None:
        ticks = 0
        while not self._closed.wait(every):
            ticks += 1
            try:
                self.refresh(speed=ticks % 6 == 0)
            except Exception:
                pass

    def close(self) -> None:
        self._closed.set()
        super().close()
