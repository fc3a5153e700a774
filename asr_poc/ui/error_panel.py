"""Errors of a run (in the Runs tab): the worst utterances of an evaluation with the differences coloured, playback,
a second evaluation beside it on the same utterances, and the most frequent word and character confusions.

It reads the details files `asr-poc eval RUN --details` writes (`asr_poc.app.analysis`); it imports no torch.
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Optional, Sequence

import ipywidgets as w

from ..app.analysis import (Confusion, Details, DetailsError, compare, confusions, csv_path, details_csv, evaluations,
                            read_details, totals, worst)
from .file_player import FilePlayer
from .style import error_span

OP_STYLES = {  # class and inline style of each kind of difference (inline: no stylesheet needed)
    "substitute": ("asr-sub", "background:#ffe0b2;color:#8a4b00;border-radius:3px;padding:0 2px"),
    "insert": ("asr-ins", "background:#c8e6c9;color:#1b5e20;border-radius:3px;padding:0 2px"),
    "delete": ("asr-del", "background:#ffcdd2;color:#b00020;text-decoration:line-through;border-radius:3px;"
                          "padding:0 2px"),
}
LEGEND = ("<span style='color:#555'>differences from the reference: "
          + " ".join(f"<span class='{c}' style='{s}'>{label}</span>" for (c, s), label in
                     zip(OP_STYLES.values(), ("substituted", "inserted", "deleted (missing)"))) + "</span>")
NO_DETAILS = ("<span style='color:#666'>No error details yet. Write them with "
              "<code>asr-poc eval RUN --dataset NAME --split test --details</code>; they appear here.</span>")
TABLE_STYLE = "border-collapse:collapse;width:100%;font-size:0.95em"
CELL = "style='padding:3px 6px;border-bottom:1px solid #eee;vertical-align:top'"


def _span(op: str, text: str, title: str = "") -> str:
    cls, style = OP_STYLES[op]
    tip = f" title='{html.escape(title, quote=True)}'" if title else ""
    return f"<span class='{cls}' style='{style}'{tip}>{html.escape(text)}</span>"


def hypothesis_html(alignment: Sequence[dict]) -> str:
    """The hypothesis with its differences coloured: substituted words (the reference word as a tooltip), inserted
    words, and the reference words it dropped, struck through. Every word is HTML-escaped."""
    parts = []
    for chunk in alignment:
        op, ref, hyp = chunk["op"], chunk["ref"], chunk["hyp"]
        if op == "equal":
            parts.append(html.escape(" ".join(hyp)))
        elif op == "substitute":
            parts += [_span(op, h, f"reference: {r}") for r, h in zip(ref, hyp)]
        elif op == "insert":
            parts += [_span(op, h, "inserted") for h in hyp]
        elif op == "delete":
            parts += [_span(op, r, "deleted") for r in ref]
    return " ".join(p for p in parts if p) or "<i style='color:#999'>(nothing)</i>"


def _rate(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}"


def utterances_html(rows: Sequence[tuple[dict, ...]], names: Sequence[str]) -> str:
    """A table of utterances: each row is one utterance as scored by each evaluation in `names` (same order)."""
    tags = [f" {html.escape(n)}" if len(names) > 1 else "" for n in names]
    head = "".join(f"<th {CELL}>CER{t}</th><th {CELL}>WER{t}</th>" for t in tags)
    out = [f"<table class='asr-error-table' style='{TABLE_STYLE}'><tr><th {CELL}>#</th><th {CELL}>utterance</th>"
           f"{head}<th {CELL} style='text-align:left'>reference / hypothesis</th></tr>"]
    for number, scored in enumerate(rows, start=1):
        first = scored[0]
        rates = "".join(f"<td {CELL}>{_rate(u.get('cer'))}</td><td {CELL}>{_rate(u.get('wer'))}</td>" for u in scored)
        lines = [f"<div style='color:#555'>{html.escape(first['reference'])}</div>"]
        lines += [f"<div>{'<b>' + html.escape(n) + ':</b> ' if len(names) > 1 else ''}"
                  f"{hypothesis_html(u['alignment'])}</div>" for n, u in zip(names, scored)]
        out.append(f"<tr class='asr-error-row'><td {CELL}>{number}</td><td {CELL}><code>{html.escape(str(first['id']))}"
                   f"</code></td>{rates}<td {CELL}>{''.join(lines)}</td></tr>")
    return "".join(out) + "</table>"


def _token(text: str) -> str:
    return "␣" if text == " " else html.escape(text) if text else "<i style='color:#999'>–</i>"


def confusions_html(title: str, items: Sequence[Confusion]) -> str:
    """A small table of confusions: reference, recognised as, times, kind."""
    if not items:
        return f"<b>{html.escape(title)}</b><div style='color:#666'>no errors</div>"
    rows = "".join(f"<tr><td {CELL}>{_token(c.ref)}</td><td {CELL}>{_token(c.hyp)}</td><td {CELL}>{c.count}</td>"
                   f"<td {CELL}>{c.kind}</td></tr>" for c in items)
    return (f"<b>{html.escape(title)}</b><table class='asr-confusions' style='{TABLE_STYLE}'><tr><th {CELL}>reference"
            f"</th><th {CELL}>recognised as</th><th {CELL}>times</th><th {CELL}>kind</th></tr>{rows}</table>")


def csv_link(details: Details) -> str:
    """A link that downloads the evaluation's utterances as CSV (the file `eval --details` wrote beside it, or the
    same table made from the details when it predates the CSV)."""
    path = csv_path(details.path)
    text = path.read_text(encoding="utf-8") if path.is_file() else details_csv(details.utterances)
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return (f"<a download='{html.escape(path.name)}' href='data:text/csv;base64,{data}'>download these "
            f"{len(details.utterances)} utterances as CSV</a> <span style='color:#666'>({html.escape(str(path))})</span>")


def details_choices(root: os.PathLike) -> list[tuple[str, str]]:
    """(label, path) of every details file under the runs folder, newest run first."""
    return [(label, str(path)) for label, path in evaluations(root)]


class ErrorPanel(w.VBox):
    """Pick an evaluation (and optionally a second one); see its worst utterances, listen to them, and its confusions."""

    def __init__(self, root: os.PathLike, shown: int = 20):
        self.root = Path(root)
        self._details: dict[str, tuple[float, Details]] = {}  # path -> (mtime, details): read once per change
        self._confusions: dict[tuple[str, float, str], list[Confusion]] = {}
        self._drawn: Optional[tuple] = None  # what show() last drew: a refresh that changes nothing redraws nothing
        self.source = w.Dropdown(description="errors of", layout=w.Layout(width="480px"))
        self.other = w.Dropdown(description="beside", layout=w.Layout(width="480px"))
        self.sort = w.Dropdown(options=[("CER", "cer"), ("WER", "wer")], value="cer", description="worst by",
                               layout=w.Layout(width="180px"))
        self.shown = w.BoundedIntText(value=shown, min=1, max=500, description="show",
                                      layout=w.Layout(width="150px"))
        self.message = w.HTML(NO_DETAILS)
        self.summary = w.HTML("")
        self.download = w.HTML("")  # the shown evaluation as CSV, for a spreadsheet
        self.download.add_class("asr-error-panel-csv")
        self.table = w.HTML("", layout=w.Layout(max_height="420px", overflow="auto"))
        self.table.add_class("asr-error-panel-table")
        self.pick = w.Dropdown(description="play", layout=w.Layout(width="480px"))
        self.player = FilePlayer()
        self.audio = self.player.audio
        self.words = w.HTML("", layout=w.Layout(width="100%"))
        self.chars = w.HTML("", layout=w.Layout(width="100%"))
        self._listing = False  # True while refresh() replaces the choices: one redraw at its end
        for control in (self.source, self.other, self.sort, self.shown):
            control.observe(lambda _: None if self._listing else self.show(), "value")
        self.pick.observe(lambda _: self.play(), "value")
        confusion_boxes = w.GridBox([self.words, self.chars], layout=w.Layout(
            grid_template_columns="repeat(auto-fit, minmax(280px, 1fr))", grid_gap="12px", width="100%"))
        super().__init__([w.HTML("<h4 style='margin:8px 0 4px 0'>Errors of a run</h4>"),
                          w.HBox([self.source, self.sort, self.shown]), self.other, self.message, self.summary, self.download,
                          w.HTML(LEGEND), self.table, w.HBox([self.pick, self.player]), confusion_boxes],
                          layout=w.Layout(width="100%"))
        self.add_class("asr-error-panel")

    # --- reading ----------------------------------------------------------------------------------------------------
    def details(self, path: str) -> Details:
        mtime = Path(path).stat().st_mtime
        cached = self._details.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, read_details(path))
            self._details[path] = cached
        return cached[1]

    def confusions(self, path: str, level: str) -> list[Confusion]:
        """The 15 most frequent confusions of a details file (character alignment takes ~0.5 s for 6,000)."""
        details = self.details(path)
        key = (path, self._details[path][0], level)
        if key not in self._confusions:
            self._confusions[key] = confusions(details.utterances, level, 15)
        return self._confusions[key]

    def _state(self) -> tuple:
        mtimes = tuple(Path(p).stat().st_mtime if p and Path(p).is_file() else None
                       for p in (self.source.value, self.other.value))
        return (self.source.value, self.other.value, self.sort.value, self.shown.value, mtimes)

    def refresh(self) -> None:
        """Re-list the details files of every run (keeping the choices that still exist), then redraw if anything
        changed."""
        choices = details_choices(self.root)
        paths = [p for _, p in choices]
        keep, keep_other = self.source.value, self.other.value
        self._listing = True
        try:
            self.source.options = choices
            self.source.value = keep if keep in paths else (paths[0] if paths else None)
            self.other.options = [("(none)", ""), *choices]
            self.other.value = keep_other if keep_other in paths else ""
        finally:
            self._listing = False
        if self._state() != self._drawn:
            self.show()

    # --- drawing ----------------------------------------------------------------------------------------------------
    def show(self) -> None:
        """Draw the worst utterances of the chosen evaluation (beside the second one, when chosen)."""
        self._drawn = self._state()
        if not self.source.value:
            self.message.value, self.summary.value, self.table.value, self.download.value = NO_DETAILS, "", "", ""
            self.words.value = self.chars.value = ""
            self.pick.options = []
            return
        try:
            a = self.details(self.source.value)
            b = self.details(self.other.value) if self.other.value and self.other.value != self.source.value else None
            by, limit = self.sort.value, int(self.shown.value)
            if b is None:
                rows = [(u,) for u in worst(a.utterances, by, limit)]
                names, shared = [a.label], a.utterances
            else:
                pairs = compare(a, b, by)
                rows, names = pairs[:limit], ["A", "B"]
                shared = [x for x, _ in pairs]
        except (DetailsError, OSError) as err:
            self.message.value = error_span(html.escape(str(err)))
            self.table.value = self.summary.value = ""
            return
        self.message.value = ""
        self.summary.value = self._summary_html(a, b, shared)
        self.download.value = csv_link(a)
        self.table.value = utterances_html(rows, names)
        self.words.value = confusions_html("most frequent word confusions", self.confusions(self.source.value, "word"))
        self.chars.value = confusions_html("most frequent character confusions", self.confusions(self.source.value, "char"))
        options = [("(choose an utterance to hear it)", ""),
                   *((f"{n}. {u[0]['id']}  CER {_rate(u[0].get('cer'))}", str(u[0]["id"])) for n, u in enumerate(rows, 1))]
        if list(self.pick.options) != options:  # the periodic refresh must not reset what is playing
            self.pick.options = options

    @staticmethod
    def _summary_html(a: Details, b: Optional[Details], shared: Sequence[dict]) -> str:
        t = totals(a.utterances)
        text = (f"<b>{html.escape(a.label)}</b>: {t['utterances']} utterances, WER {_rate(t['wer'])}, "
                f"CER {_rate(t['cer'])}")
        if b is not None:
            ids = {str(u["id"]) for u in shared}
            ta = totals([u for u in a.utterances if str(u["id"]) in ids])
            tb = totals([u for u in b.utterances if str(u["id"]) in ids])
            run_a, run_b = (html.escape(d.path.parent.parent.name) for d in (a, b))  # <run>/details/<file>
            text = (f"On the {len(ids)} utterances both scored: <b>A</b> {html.escape(a.label)} ({run_a}) WER "
                    f"{_rate(ta['wer'])}, CER {_rate(ta['cer'])}; <b>B</b> {html.escape(b.label)} ({run_b}) WER "
                    f"{_rate(tb['wer'])}, CER {_rate(tb['cer'])}")
        return f"<div>{text}</div>"

    def play(self) -> None:
        """Load the picked utterance's audio file into the player."""
        if not self.pick.value or not self.source.value:
            return
        utterance = next((u for u in self.details(self.source.value).utterances if str(u["id"]) == self.pick.value),
                         None)
        problem = self.player.load(utterance and utterance.get("audio"))
        self.message.value = error_span(f"{html.escape(self.pick.value)}: {html.escape(problem)}") if problem else ""
