"""Training panel: choose a model and data, set the main hyperparameters, start/stop/resume, watch it live.

Start, Stop and Resume call `asr_poc.app.training` with the form as a `RunRequest`: the run trains as a separate
process (closing the tab does not end training), or in a thread of this kernel for a model defined in a notebook.
The panel then only follows the run folder with a `RunWatcher`, so a reloaded page or a second browser shows the
same run with its whole history, and a run started from the command line appears here too.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Iterable, Optional

import ipywidgets as w

from ..app import training
from ..app.training import RunAlreadyActive, RunHandle, RunRequest, active_runs, log_tail
from ..app.runs import ACTIVE_STATES, Run, default_root, list_runs
from ..app.settings import SIZE_NAMES, ConfigError, load_top_level
from .charts import EXTRA_COLORS, LineChart
from .history import RunHistory, format_seconds, progress
from .watcher import RunWatcher
from .style import COLORS, message_html

RESUMABLE = ("stopped", "finished", "failed", "interrupted")
LOG_COLORS = COLORS


def button_states(state: Optional[str], has_last_checkpoint: bool) -> dict[str, bool]:
    """Which buttons are enabled for a run in `state` (None: no run shown)."""
    running = state in ACTIVE_STATES
    return {"start": not running,
            "stop": state == "running",
            "resume": state in RESUMABLE and has_last_checkpoint}


def form_config(config_path: Optional[str], overrides: list[str]) -> dict:
    """The merged config the form starts from, its top-level keys checked. The model's and data set's sections are
    not: checking them imports their plugins, and torch with them (about 700 MB), into every page kernel; Start
    validates everything (`app.training.start`) before a run is made."""
    return load_top_level(config_path, overrides)


class TrainingPanel(w.VBox):
    """The training tab. `overrides` are `--set`-style strings applied to every run it starts."""

    def __init__(self, config_path: Optional[str] = None, overrides: Iterable[str] = (), background: str = "process",
                 attach: bool = True, interval: float = 0.25, discover_every: float = 2.0):
        self.config_path, self.overrides, self.background = config_path, list(overrides), background
        self.interval, self.discover_every = interval, discover_every
        self.base = form_config(config_path, self.overrides)
        self.root = default_root(self.base)
        self.run: Optional[Run] = None
        self.handle: Optional[RunHandle] = None
        self.history = RunHistory()
        self.status: dict = {}
        self.watcher: Optional[RunWatcher] = None
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._build()
        super().__init__([self.form, self.buttons_row, self.progress_row, self.message, self.charts_box,
                          self.log_box], layout=w.Layout(width="100%"))
        self.add_class("asr-training-panel")
        self._set_buttons(None, False)
        if attach:
            current = active_runs(self.root) or list_runs(self.root)[:1]
            if current:
                self.attach(current[0])
        self._discoverer = threading.Thread(target=self._discover_loop, daemon=True, name="asr-poc-discover")
        self._discoverer.start()

    # --- layout ------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, tc = self.base, self.base["training"]
        style = {"description_width": "120px"}
        lay = w.Layout(width="270px")
        self.model = w.Dropdown(options=cfg["available_models"], value=cfg["model"], description="model",
                                style=style, layout=lay)
        self.size = w.Dropdown(options=SIZE_NAMES, value=self._size_of(cfg["model"]) or SIZE_NAMES[0], description="size",
                               style=style, layout=lay)
        self.dataset = w.Dropdown(options=cfg["available_datasets"], value=cfg["dataset"], description="dataset",
                                  style=style, layout=lay)
        self.learning_rate = w.BoundedFloatText(value=tc["learning_rate"], min=1e-6, max=1.0, step=1e-4,
                                                description="learning rate", style=style, layout=lay)
        self.batch_size = w.BoundedIntText(value=tc["batch_size"], min=1, max=4096, description="batch size",
                                           style=style, layout=lay)
        self.epochs = w.BoundedIntText(value=tc["epochs"], min=1, max=100_000, description="epochs", style=style,
                                       layout=lay)
        self.checkpoint_every = w.BoundedIntText(value=tc["checkpoint_every"], min=1, max=10_000,
                                                 description="checkpoint every", style=style, layout=lay,
                                                 tooltip="write epoch-N.pt every this many epochs")
        self.minutes = w.BoundedFloatText(value=tc["max_minutes"] or 0, min=0, max=100_000, step=1,
                                          description="time limit (min)", style=style, layout=lay,
                                          tooltip="stop after this many minutes; 0: no limit")
        self.model.observe(self._model_changed, "value")
        self._model_changed()
        self.form = w.HBox([w.VBox([self.model, self.size, self.dataset]),
                            w.VBox([self.learning_rate, self.batch_size, self.epochs]),
                            w.VBox([self.checkpoint_every, self.minutes])],
                           layout=w.Layout(flex_flow="row wrap"))

        self.start_button = w.Button(description="Start", icon="play", button_style="success",
                                     tooltip="start a new run with these settings")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="stop after the current step, with a final checkpoint")
        self.resume_button = w.Button(description="Resume", icon="repeat", button_style="info",
                                      tooltip="continue the shown run from its last.pt (epochs and minutes above apply)")
        for b, cls in ((self.start_button, "asr-start"), (self.stop_button, "asr-stop"),
                       (self.resume_button, "asr-resume")):
            b.add_class(cls)
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.resume_button.on_click(lambda _: self.resume())
        self.status_line = w.HTML("no run yet: choose the settings and press Start")
        self.status_line.add_class("asr-status")
        self.buttons_row = w.HBox([self.start_button, self.stop_button, self.resume_button, self.status_line],
                                  layout=w.Layout(align_items="center", flex_flow="row wrap"))
        self.progress_bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="320px"))
        self.progress_label = w.HTML("")
        self.progress_label.add_class("asr-progress")
        self.progress_row = w.HBox([self.progress_bar, self.progress_label], layout=w.Layout(align_items="center"))
        self.message = w.HTML("")
        self.message.add_class("asr-message")

        self.loss_chart = LineChart("training loss", legend=False)
        self.lr_chart = LineChart("learning rate", legend=False)
        self.eval_chart = LineChart("dev WER / CER, real-speech CER (each epoch)", markers=True)
        self.loss_chart.figure.add_class("asr-loss-chart")
        self.charts_box = w.GridBox([self.loss_chart.figure, self.lr_chart.figure, self.eval_chart.figure],
                                    layout=w.Layout(grid_template_columns="repeat(auto-fit, minmax(300px, 1fr))",
                                                    width="100%"))
        self.log_html = w.HTML("")
        self.log_html.add_class("asr-log")
        self.log_box = w.Accordion([self.log_html], titles=("log: warnings and errors of the run",))

    def _size_of(self, model: str) -> Optional[str]:
        section = self.base["models"].get(model) or {}
        return section.get("size") if "size" in section else None

    def _model_changed(self, *_) -> None:
        size = self._size_of(self.model.value)
        self.size.disabled = size is None
        if size is not None and size in SIZE_NAMES and not self.run:
            self.size.value = size

    def form_request(self) -> RunRequest:
        """The form as a request, over the panel's config file and `overrides`."""
        return RunRequest(config_path=self.config_path, extra=training.parse_sets(self.overrides),
                          model=self.model.value, dataset=self.dataset.value,
                          size=None if self.size.disabled else self.size.value,
                          learning_rate=self.learning_rate.value, batch_size=self.batch_size.value,
                          **self.schedule_request().model_dump(include={"epochs", "checkpoint_every", "minutes"}))

    def schedule_request(self) -> RunRequest:
        """The form's epochs, checkpoint interval and time budget (0: none): what a resumed run may change."""
        return RunRequest(epochs=self.epochs.value, checkpoint_every=self.checkpoint_every.value,
                          minutes=self.minutes.value)

    # --- actions -------------------------------------------------------------------------------------------------
    def start(self) -> Optional[Run]:
        """Start a new run with the form's settings; refused (with a message) while any run is training."""
        with self._lock:
            if self._refused_while_another_trains():
                return None
            try:
                self.handle = training.start(self.form_request(), background=self.background)
            except ConfigError as err:
                self.show_message("<br>".join(html.escape(p) for p in err.problems), "error", "cannot start")
                return None
            except RunAlreadyActive as err:  # `start` removed the folder it had made
                self._lost_the_lock(err)
                return None
            except Exception as err:
                self.show_message(html.escape(f"{type(err).__name__}: {err}"), "error", "could not start")
                return None
            run = self.handle.run
            self.attach(run)
            self.show_message(f"started run <code>{run.id}</code> "
                              f"({'separate process' if self.background == 'process' else self.background})", "info")
            return run

    def _refused_while_another_trains(self) -> bool:
        """Start and Resume: while a run trains in this runs folder, say which (and show it) and refuse."""
        others = active_runs(self.root)
        if not others:
            return False
        self.show_message(f"<code>{others[0].id}</code> is training; stop it before starting another.", "warning",
                          "refused")
        if others[0] != self.run:
            self.attach(others[0])
        return True

    def _lost_the_lock(self, err: RunAlreadyActive) -> None:
        """A run took the runs folder's lock between the check and the start: say who holds it, and show it."""
        self.show_message(html.escape(str(err)), "warning", "refused")
        holders = active_runs(self.root)
        if holders and holders[0] != self.run:
            self.attach(holders[0])

    def stop(self) -> None:
        """Ask the shown run to stop after its current step; it writes last.pt first."""
        with self._lock:
            if self.run is None or not self.run.is_active:
                self.show_message("no run is training", "warning")
                return
            own = self.handle is not None and self.handle.run == self.run
            training.stop(self.handle if own else self.run, wait=False)
            self.stop_button.disabled = True
            self.show_message(f"stopping <code>{self.run.id}</code> after this step (writing last.pt)...", "info")

    def resume(self) -> Optional[Run]:
        """Continue the shown run from last.pt; the form's epochs, minutes and checkpoint interval apply."""
        with self._lock:
            run = self.run
            if run is None or not run.last_checkpoint.is_file():
                self.show_message("nothing to resume: the run has no last.pt", "warning")
                return None
            if self._refused_while_another_trains():
                return None
            try:
                self.handle = training.resume(run, self.schedule_request(), background=self.background)
            except RunAlreadyActive as err:
                self._lost_the_lock(err)
                return None
            except Exception as err:  # a refused override (ConfigError) or a launch that failed: one line
                self.show_message(html.escape(str(err)), "error", "could not resume")
                return None
            self.show_message(f"resuming <code>{run.id}</code> from last.pt", "info")
            self._apply_status(run.status)
            return run

    # --- following a run -----------------------------------------------------------------------------------------
    def attach(self, run: Run) -> None:
        """Show `run`: its whole history so far, then new events as they come."""
        with self._lock:
            if self.watcher is not None:
                self.watcher.stop()
            self.run, self.history, self.status = run, RunHistory(), {}
            for chart in (self.loss_chart, self.lr_chart, self.eval_chart):
                chart.clear()
            self.log_html.value = ""
            self._fill_form(run)
            self.watcher = RunWatcher(run, self._on_events, self._on_status, interval=self.interval)
            self.watcher.poll()  # the history, at once
            self.watcher.start()

    def _fill_form(self, run: Run) -> None:
        try:
            cfg = run.config
            tc = cfg["training"]
            if cfg["model"] in self.model.options:
                self.model.value = cfg["model"]
            size = (cfg["models"].get(cfg["model"]) or {}).get("size")
            if size in SIZE_NAMES:
                self.size.value = size
            if cfg["dataset"] in self.dataset.options:
                self.dataset.value = cfg["dataset"]
            self.learning_rate.value, self.batch_size.value = tc["learning_rate"], tc["batch_size"]
            self.epochs.value, self.checkpoint_every.value = tc["epochs"], tc["checkpoint_every"]
            self.minutes.value = tc.get("max_minutes") or 0
        except Exception:  # a hand-edited config: the form keeps its values
            pass

    def _on_events(self, events: list[dict]) -> None:
        changed = self.history.extend(events)
        h = self.history
        if "steps" in changed:
            self.loss_chart.set_line("loss", h.steps, h.losses, color="#1f77b4")
            self.lr_chart.set_line("lr", h.steps, h.lrs, color="#ff7f0e")
        if "evals" in changed:
            self.eval_chart.set_line("WER", h.eval_steps, h.wers, color="#d62728")
            self.eval_chart.set_line("CER", h.eval_steps, h.cers, color="#2ca02c")
        if "extra" in changed:  # training.extra_eval: CER on real speech beside the dev curves
            for i, (name, (steps, _, cers)) in enumerate(h.extra_series().items()):
                self.eval_chart.set_line(f"{name} CER", steps, cers, color=EXTRA_COLORS[i % len(EXTRA_COLORS)])
        if "logs" in changed:
            self.log_html.value = render_log(h.logs)
            if any(e.get("level") in ("warning", "error") or e.get("error") for e in events):
                self.log_box.selected_index = 0  # open the log when something needs attention
        self._update_progress()

    def _on_status(self, status: dict) -> None:
        self._apply_status(status)

    def _apply_status(self, status: dict) -> None:
        self.status = status
        run = self.run
        state = status.get("state")
        self._set_buttons(state, bool(run and run.last_checkpoint.is_file()))
        if run is None:
            return
        best = status.get("best_cer")
        parts = [f"run <code>{run.id}</code>", f"<b class='asr-state'>{state}</b>"]
        if best is not None:
            parts.append(f"best dev CER {best:.3f}, WER {status.get('best_wer') or 0:.3f}")
        self.status_line.value = " · ".join(parts)
        if state == "failed":
            tail = log_tail(run, 15)
            self.show_message(html.escape(status.get("error") or "failed") +
                              (f"<pre class='asr-tail'>{html.escape(tail)}</pre>" if tail else ""), "error",
                              "the run failed")
        elif state in ("stopped", "finished") and self.message.value and "stopping" in self.message.value:
            self.show_message(f"run <code>{run.id}</code> {state}; last.pt saved", "info")
        self._update_progress()

    def _set_buttons(self, state: Optional[str], has_last: bool) -> None:
        states = button_states(state, has_last)
        self.start_button.disabled = not states["start"]
        self.stop_button.disabled = not states["stop"]
        self.resume_button.disabled = not states["resume"]

    def _update_progress(self) -> None:
        if self.run is None:
            return
        try:
            training = self.run.config["training"]
        except Exception:
            return
        fraction, left = progress(self.history, self.status, training)
        state = self.status.get("state") or self.history.state
        if state in ("finished",):
            fraction = 1.0
        self.progress_bar.value = fraction
        epoch = max(self.history.epoch, int(self.status.get("epoch") or 0))
        step = max(self.history.last_step, int(self.status.get("step") or 0))
        text = f"epoch {epoch}/{training.get('epochs')} · step {step}"
        if training.get("max_steps"):
            text += f"/{training['max_steps']}"
        if state in ACTIVE_STATES:
            text += f" · {format_seconds(left)} left"
        self.progress_label.value = text

    def show_message(self, text: str, level: str = "info", title: str = "") -> None:
        self.message.value = message_html(text, level, title)

    def _discover_loop(self) -> None:
        """Attach to a run started elsewhere (the command line, another browser) when the shown one is idle."""
        while not self._closed.wait(self.discover_every):
            try:
                if self.run is not None and self.status.get("state") in ACTIVE_STATES:
                    continue
                for run in active_runs(self.root):
                    if run != self.run:
                        self.attach(run)
                        self.show_message(f"following run <code>{run.id}</code>, started elsewhere", "info")
                    break
            except Exception:
                pass

    def wait(self, timeout: Optional[float] = None) -> dict:
        """Block until the shown run ends (for notebooks run top to bottom); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.run is not None and self.run.is_active and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        if self.handle is not None and self.handle.run == self.run:
            self.handle.wait(timeout=5.0)
        if self.watcher is not None:
            self.watcher.poll()
        return self.run.status if self.run else {}

    def close(self) -> None:
        self._closed.set()
        if self.watcher is not None:
            self.watcher.stop()
        super().close()


def render_log(logs: list[dict], limit: int = 100) -> str:
    """Log events as HTML lines, newest last; warnings and errors stand out."""
    lines = []
    for e in logs[-limit:]:
        level = e.get("level", "info")
        stamp = time.strftime("%H:%M:%S", time.localtime(float(e.get("time") or 0)))
        lines.append(f"<div class='asr-log-{level}' style='color:{LOG_COLORS.get(level, '#555')}'>"
                     f"{stamp} <b>{html.escape(level)}</b> {html.escape(str(e.get('message', '')))}</div>")
    return ("<pre style='white-space:pre-wrap;max-height:240px;overflow:auto;font-size:12px;margin:0'>"
            + "".join(lines) + "</pre>") if lines else "<i>no log lines yet</i>"
