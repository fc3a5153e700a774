"""Data tab: the utterances of any configured data set and split, filtered by text and voice/speaker, with totals, a
duration histogram and playback. The reading, filtering and totals are `asr_poc.corpus_index`; this is the screen.

Nothing is read until the tab is opened (`refresh()`): the data set plugins import torch, the idle page does not.
"""
from __future__ import annotations

import html
from typing import Iterable, Optional

import bqplot as bq
import ipywidgets as w
import numpy as np

from ..app.data import Entry, corpus_totals, duration_histogram, filter_entries, speakers_of
from .file_player import FilePlayer
from .style import error_span

SPLITS = ("train", "dev", "test")
LISTED = 200  # rows in the table and the player's list; the totals and histogram count every match
CELL = "style='padding:2px 6px;border-bottom:1px solid #eee;vertical-align:top'"


def entries_html(entries: Iterable[Entry]) -> str:
    """A table of utterances: id, voice/speaker, seconds, text (escaped)."""
    rows = "".join(f"<tr class='asr-data-row'><td {CELL}><code>{html.escape(e.id)}</code></td><td {CELL}>"
                   f"{html.escape(e.speaker) or '–'}</td><td {CELL}>{e.duration:.2f}</td><td {CELL}>"
                   f"{html.escape(e.text)}</td></tr>" for e in entries)
    return (f"<table class='asr-data-table' style='border-collapse:collapse;width:100%'><tr><th {CELL}>id</th>"
            f"<th {CELL}>voice / speaker</th><th {CELL}>seconds</th><th {CELL} style='text-align:left'>text</th>"
            f"</tr>{rows}</table>")


def totals_html(shown: list[Entry], everything: list[Entry]) -> str:
    """`N utterances, H h (M min), mean S s, K voices/speakers` of the matches, and of the whole split."""
    t, whole = corpus_totals(shown), corpus_totals(everything)
    of = "" if len(shown) == len(everything) else f" (of {whole['utterances']:,}, {whole['hours']:.2f} h)"
    return (f"<b>{t['utterances']:,}</b> utterances, <b>{t['hours']:.2f} h</b> ({t['seconds'] / 60:.1f} min), "
            f"mean {t['mean_seconds']:.2f} s, {t['speakers']} voices/speakers, {t['words']:,} words{of}")


class DataBrowser(w.VBox):
    """Choose a data set and split; filter; see the totals, the histogram and the utterances; play one."""

    def __init__(self, config_path: Optional[str] = None, overrides: Iterable[str] = ()):
        self.config_path, self.overrides = config_path, tuple(overrides)
        self.entries: list[Entry] = []
        self.matches: list[Entry] = []
        self.dataset = w.Dropdown(description="data set", layout=w.Layout(width="260px"))
        self.split = w.Dropdown(options=SPLITS, value="test", description="split", layout=w.Layout(width="200px"))
        self.text = w.Text(placeholder="words of the text or id", description="text",
                           continuous_update=False, layout=w.Layout(width="300px"))
        self.speaker = w.Combobox(placeholder="voice or speaker (or part of one)", description="voice",
                                  ensure_option=False, continuous_update=False, layout=w.Layout(width="340px"))
        self.message = w.HTML("")
        self.totals = w.HTML("")
        self.table = w.HTML("", layout=w.Layout(max_height="360px", overflow="auto"))
        self.pick = w.Dropdown(description="play", layout=w.Layout(width="420px"))
        self.player = FilePlayer()
        self.audio = self.player.audio
        self.histogram = self._histogram_figure()
        self._loading = False  # True while choices are replaced: one redraw at the end
        self.dataset.observe(lambda _: None if self._loading else self.load(), "value")
        self.split.observe(lambda _: None if self._loading else self.load(), "value")
        self.text.observe(lambda _: self.apply_filters(), "value")
        self.speaker.observe(lambda _: self.apply_filters(), "value")
        self.pick.observe(lambda _: self.play(), "value")
        help_line = w.HTML("<span style='color:#666'>The utterances training reads from each data set of the config. "
                           "Filter by words and by voice (synthetic), speaker (recordings) or source (real-check); "
                           f"the table lists the first {LISTED} matches.</span>")
        super().__init__([w.HBox([self.dataset, self.split]), w.HBox([self.text, self.speaker]), help_line,
                          self.message, self.totals, self.histogram, self.table, w.HBox([self.pick, self.player])],
                         layout=w.Layout(width="100%"))
        self.add_class("asr-data-browser")

    def _histogram_figure(self) -> bq.Figure:
        self.x_scale, self.y_scale = bq.LinearScale(), bq.LinearScale(min=0)
        self.bars = bq.Bars(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                            colors=["#1f77b4"], padding=0.05,
                            tooltip=bq.Tooltip(fields=["x", "y"], labels=["seconds", "utterances"],
                                               formats=[".1f", ".0f"]))
        self.y_axis = bq.Axis(scale=self.y_scale, side="left", label="utterances", tick_format=",.0f", num_ticks=5)
        axes = [bq.Axis(scale=self.x_scale, label="duration (s)", tick_format=".1f", num_ticks=8), self.y_axis]
        figure = bq.Figure(marks=[self.bars], axes=axes, title="durations of the matching utterances",
                           animation_duration=0, fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 16},
                           layout=w.Layout(width="100%", height="220px", min_width="260px"))
        figure.add_class("asr-chart")
        return figure

    # --- reading ----------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the config's data sets (keeping the choice) and read the chosen split again if its files changed."""
        from ..app.settings import ConfigError, load_config  # validating the config imports the plugins (torch)

        try:
            cfg = load_config(self.config_path, list(self.overrides), check_data=False)
        except ConfigError as err:
            self.message.value = error_span(f"{html.escape('; '.join(err.problems))}")
            return
        names = [n for n in cfg["available_datasets"] if n in cfg["datasets"]]
        keep = self.dataset.value if self.dataset.value in names else cfg["dataset"]
        self._loading = True
        try:
            self.dataset.options = names
            self.dataset.value = keep if keep in names else (names[0] if names else None)
        finally:
            self._loading = False
        self.load()

    def load(self) -> None:
        """Read the chosen data set's split (cached until its files change), then filter."""
        from ..app.data import corpus_entries  # imports the data set plugins (torch) on first use

        if not self.dataset.value:
            return
        where = f"{html.escape(self.dataset.value)}/{self.split.value}"
        self.message.value = f"<span style='color:#666'>reading {where}…</span>"
        try:
            self.entries = corpus_entries(self.dataset.value, self.split.value, self.config_path, self.overrides)
        except Exception as err:  # a data set not prepared, a bad config: one line, and the tab stays usable
            self.entries = []
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            self.message.value = error_span(f"{where}: {html.escape(reason)}")
        else:
            self.message.value = ""
        self.speaker.options = [name for name, _ in speakers_of(self.entries)]
        self.apply_filters()

    # --- drawing ----------------------------------------------------------------------------------------------------
    def apply_filters(self) -> None:
        """Show the utterances that match the text and voice filters: totals, histogram, table, player list."""
        self.matches = filter_entries(self.entries, self.text.value, self.speaker.value)
        self.totals.value = totals_html(self.matches, self.entries)
        edges, counts = duration_histogram(self.matches)
        top = int(counts.max()) if len(counts) else 1
        with self.histogram.hold_sync(), self.bars.hold_sync():
            if len(edges):  # the bars (drawn at the bins' centres) fill the axis from the first edge to the last
                self.x_scale.min, self.x_scale.max = float(edges[0]), float(edges[-1])
            self.y_scale.max = float(max(top, 1))
            self.y_axis.tick_values = np.unique(np.round(np.linspace(0, max(top, 1), min(max(top, 1), 4) + 1)))
            self.bars.x = (edges[:-1] + edges[1:]) / 2 if len(edges) else np.zeros(0)
            self.bars.y = counts.astype(float)
        listed = self.matches[:LISTED]
        self.table.value = entries_html(listed)
        self.pick.options = [("(choose an utterance to hear it)", ""),
                             *((f"{e.id}  {e.duration:.1f} s  {e.text[:50]}", e.id) for e in listed)]

    def play(self) -> None:
        """Load the picked utterance's audio file into the player."""
        entry = next((e for e in self.matches if e.id == self.pick.value), None)
        if entry is None:
            return
        problem = self.player.load(entry.audio)
        self.message.value = (error_span(f"{html.escape(entry.id)}: {html.escape(problem)}")
                              if problem else "")
