"""Small bqplot line charts: one figure, any number of named lines, updated in batches under `hold_sync()`."""
from __future__ import annotations

from typing import Optional, Sequence

import bqplot as bq
import numpy as np
from ipywidgets import Layout

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]
EXTRA_COLORS = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]  # real-speech sets beside dev WER/CER
MAX_POINTS = 2000  # a line longer than this is thinned for display (the run folder keeps every point)


def thin(x: Sequence[float], y: Sequence[float], max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points, evenly spaced, always keeping the last one."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x_arr) <= max_points:
        return x_arr, y_arr
    idx = np.unique(np.append(np.linspace(0, len(x_arr) - 1, max_points).astype(int), len(x_arr) - 1))
    return x_arr[idx], y_arr[idx]


class LineChart:
    """A titled bqplot figure whose lines are addressed by name; `set_line` creates a line on first use."""

    def __init__(self, title: str, x_label: str = "step", y_label: str = "", log_y: bool = False,
                 height: str = "240px", markers: bool = False, legend: bool = True):
        self.x_scale = bq.LinearScale()
        self.y_scale = bq.LogScale() if log_y else bq.LinearScale()
        self.markers, self.legend = markers, legend
        # (num_ticks on a log axis breaks bqplot's rendering: "Cannot read properties of undefined")
        y_ticks = {} if log_y else {"num_ticks": 5}
        # Every axis has an explicit tick format: bqplot's guess fails on a domain with no ticks yet
        # ("Error setting state: invalid format: .undefinedg") while a new line gets its first points.
        axes = [bq.Axis(scale=self.x_scale, label=x_label, num_ticks=5, tick_format=",.0f"),
                bq.Axis(scale=self.y_scale, side="left", label=y_label, tick_format=".3g", **y_ticks)]
        self.figure = bq.Figure(marks=[], axes=axes, title=title, animation_duration=0,
                                legend_location="top-right",
                                fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 16},
                                layout=Layout(width="100%", height=height, min_width="260px"))
        self.figure.add_class("asr-chart")
        self.lines: dict[str, bq.Lines] = {}

    def line(self, name: str, color: Optional[str] = None) -> bq.Lines:
        if name not in self.lines:
            color = color or PALETTE[len(self.lines) % len(PALETTE)]
            mark = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                            colors=[color], labels=[name], display_legend=self.legend, stroke_width=1.5,
                            marker="circle" if self.markers else None, marker_size=24)
            self.lines[name] = mark
            self.figure.marks = [*self.figure.marks, mark]
        return self.lines[name]

    def set_line(self, name: str, x: Sequence[float], y: Sequence[float], color: Optional[str] = None) -> None:
        """Replace the points of line `name` (one message to the browser for x and y together)."""
        mark = self.line(name, color)
        xs, ys = thin(x, y)
        if self.y_scale.__class__ is bq.LogScale:  # a log scale cannot show zero or negative values
            keep = ys > 0
            xs, ys = xs[keep], ys[keep]
        with mark.hold_sync():
            mark.x, mark.y = xs, ys

    def point_count(self, name: str) -> int:
        mark = self.lines.get(name)
        return 0 if mark is None else len(mark.x)

    def keep_only(self, names: Sequence[str]) -> None:
        """Remove every line not in `names`."""
        gone = [n for n in self.lines if n not in names]
        if gone:
            for n in gone:
                del self.lines[n]
            self.figure.marks = list(self.lines.values())

    def clear(self) -> None:
        """Remove every line, with fresh scales: a removed line's points would otherwise still stretch the axes.
        (Emptying a line, or closing a removed one, makes bqplot fail on later updates: "invalid format".)"""
        self.lines = {}
        self.x_scale, self.y_scale = bq.LinearScale(), self.y_scale.__class__()
        x_axis, y_axis = self.figure.axes
        with self.figure.hold_sync():
            x_axis.scale, y_axis.scale = self.x_scale, self.y_scale
            self.figure.marks = []
