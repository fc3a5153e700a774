"""Record tab: read a sentence aloud, save it to the recordings data set, manage your clips, adapt a model to them.

The page shows a sentence to read (from the synthetic corpus's grammar, or typed by the person), records it with
the microphone widget and saves clip, text and speaker to `data/recordings/` (`RecordingStore`). The person's
clips are listed with their split; one can be played or deleted. "Adapt to my voice" starts a normal run from a
chosen checkpoint on the synthetic corpus mixed with the person's clips (a `RunRequest` with an `Adaptation`, given
to `asr_poc.app.training.start`), and the tab shows each such run's CER on the person's held-out clips before and
after.

Saving, deleting and starting run on one worker thread, so the page stays responsive. Modules that import torch
(the store reads audio with torchaudio, the runs and the adaptation load models) are imported inside the methods
that need them: a page kernel that never records does not pay for them.
"""
from __future__ import annotations

import html
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import ipywidgets as w
import numpy as np

from ..app import training
from ..app.training import Adaptation, RunAlreadyActive, RunRequest
from ..app.runs import list_runs
from ..app.settings import resolve_path
from .recorder import MicRecorder
from .training_panel import form_config
from .style import message_html

MAX_SECONDS = 30.0
MIN_ADAPT_MINUTES = 0.1
LABEL_TEXT_CHARS = 60


def clip_label(clip: Any) -> str:
    """One line of the clip list: id, split, length and the start of the text."""
    text = clip.text if len(clip.text) <= LABEL_TEXT_CHARS else clip.text[: LABEL_TEXT_CHARS - 1] + "…"
    return f"{clip.id} · {clip.split} · {clip.seconds:.1f} s · {text}"


def counts_html(counts: dict[str, int], speaker: str) -> str:
    total = sum(counts.values())
    who = html.escape(speaker) if speaker else "everyone"
    return (f"<b>{total}</b> clips of {who}: <b>{counts.get('train', 0)}</b> to train on, "
            f"<b>{counts.get('test', 0)}</b> held out to test (every 5th)")


def adaptation_rows_html(rows: list[dict]) -> str:
    """A small table: adaptation run, state, held-out CER before and best after."""
    if not rows:
        return "<i>no adaptation runs for this speaker yet</i>"

    def cer(x: Optional[dict]) -> str:
        return f"{x['cer']:.3f}" if x and x.get("cer") is not None else "-"

    body = "".join(f"<tr><td><code>{html.escape(r['run'])}</code></td><td>{html.escape(str(r['state']))}</td>"
                   f"<td>{cer(r['before'])}</td><td>{cer(r['after'])}</td></tr>" for r in rows)
    return ("<table class='asr-adaptations'><tr><th>run</th><th>state</th><th>your CER before</th>"
            f"<th>after (best so far)</th></tr>{body}</table>")


class RecordPanel(w.VBox):
    """The record tab. `recordings_path` defaults to the config's `datasets.recordings.path`."""

    def __init__(self, root: Optional[os.PathLike] = None, config_path: Optional[str] = None,
                 overrides: Iterable[str] = (), recordings_path: Optional[os.PathLike] = None,
                 background: str = "process", on_adapt: Optional[Callable[[Any], None]] = None, seed: int = 0):
        self.base = form_config(config_path, list(overrides))  # plugins (and torch) are checked on Adapt
        self.root = Path(root) if root else resolve_path(self.base.get("checkpoint_dir") or "checkpoints")
        recordings = self.base["datasets"].get("recordings") or {}
        self.recordings_path = resolve_path(recordings_path or recordings.get("path") or "data/recordings")
        self.base["datasets"]["recordings"] = {**recordings, "path": str(self.recordings_path)}  # adapt reads it
        self.background, self.on_adapt, self.seed = background, on_adapt, seed
        self._sentences: Any = None
        self._store: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-poc-record")
        self.last_clip: Any = None
        self.last_handle: Any = None

        style = {"description_width": "92px"}
        self.sentence = w.Textarea(description="read aloud", style=style, rows=2, layout=w.Layout(width="560px"),
                                   placeholder="a sentence to read; or type your own")
        self.sentence.add_class("asr-sentence")
        self.another = w.Button(description="Another sentence", icon="random", layout=w.Layout(width="160px"))
        self.another.on_click(lambda _: self.next_sentence())
        self.speaker = w.Text(description="your name", style=style, placeholder="e.g. Anna",
                              continuous_update=False, layout=w.Layout(width="300px"))
        self.speaker.add_class("asr-speaker")
        self.speaker.observe(lambda _: self.refresh(), "value")
        self.mic = MicRecorder(max_seconds=MAX_SECONDS, hint="press Record, read the sentence, then Stop")
        self.mic.on_stop(lambda audio: self.submit(self.save_recording, audio, self.mic.sample_rate))
        self.mic.on_error(lambda message: self.show_message(html.escape(message), "error"))
        self.message = w.HTML("")
        self.message.add_class("asr-record-message")

        self.counts = w.HTML("")
        self.counts.add_class("asr-record-counts")
        self.clips = w.Select(options=[], rows=8, layout=w.Layout(width="560px"))
        self.clips.add_class("asr-clips")
        self.play_button = w.Button(description="Play", icon="play", layout=w.Layout(width="90px"))
        self.play_button.on_click(lambda _: self.play_selected())
        self.delete_button = w.Button(description="Delete", icon="trash", button_style="danger",
                                      layout=w.Layout(width="90px"))
        self.delete_button.on_click(lambda _: self.submit(self.delete_selected))
        self.player = w.Audio(format="wav", autoplay=True, controls=True, layout=w.Layout(width="320px"))
        self.player_box = w.Box([])  # the player joins the page with the first clip (an empty one errors)

        self.checkpoint = w.Dropdown(description="start from", style=style, layout=w.Layout(width="560px"))
        self.minutes = w.BoundedFloatText(value=5.0, min=MIN_ADAPT_MINUTES, max=600.0, step=1.0,
                                          description="minutes", style=style, layout=w.Layout(width="200px"))
        self.adapt_button = w.Button(description="Adapt to my voice", icon="user", button_style="success",
                                     tooltip="train a new run from the chosen checkpoint on the synthetic corpus "
                                             "and your clips, for the minutes set", layout=w.Layout(width="180px"))
        self.adapt_button.add_class("asr-adapt")
        self.adapt_button.on_click(lambda _: self.submit(self.adapt))
        self.adaptations = w.HTML("")
        self.adaptations.add_class("asr-adaptations")

        super().__init__([
            w.HTML("<b>1. Read a sentence aloud</b> (your clips become a data set; every 5th is kept for testing)"),
            w.HBox([self.sentence, self.another], layout=w.Layout(align_items="center")),
            self.speaker, self.mic, self.message,
            w.HTML("<b>2. Your clips</b>"), self.counts, self.clips,
            w.HBox([self.play_button, self.delete_button, self.player_box], layout=w.Layout(align_items="center")),
            w.HTML("<b>3. Adapt a model to your voice</b> (a new run: watch it in Training, test it in Test)"),
            self.checkpoint, w.HBox([self.minutes, self.adapt_button]), self.adaptations,
        ], layout=w.Layout(width="100%"))
        self.add_class("asr-record-panel")

    # --- helpers -------------------------------------------------------------------------------------------------
    @property
    def store(self):
        """The recordings store (imported on first use: it reads audio with torchaudio, which imports torch)."""
        if self._store is None:
            from ..app.data import recording_store  # torch (audio): loaded when the tab is used

            self._store = recording_store(self.recordings_path)
        return self._store

    def submit(self, fn: Callable, *args) -> Future:
        """Run `fn` on the panel's worker thread; an unexpected error is shown, and the panel keeps working."""
        def guarded():
            try:
                return fn(*args)
            except Exception as err:
                self.show_message(html.escape(f"{type(err).__name__}: {err}"), "error")
                return None
        return self._executor.submit(guarded)

    def flush(self, timeout: float = 120.0) -> None:
        """Wait until everything submitted so far is done (for tests and notebooks)."""
        self.submit(lambda: None).result(timeout=timeout)

    def show_message(self, text: str, level: str = "info") -> None:
        self.message.value = message_html(text, level)

    # --- sentences and recordings --------------------------------------------------------------------------------
    def next_sentence(self) -> str:
        """Put a new sentence from the synthetic corpus's grammar in the text box (seeded per panel)."""
        if self._sentences is None:
            from ..app.data import sentence_generator  # imports torch via the atomic writers

            self._sentences = sentence_generator(seed=self.seed + 7919)
        self.sentence.value = self._sentences.sentence()
        return self.sentence.value

    def save_recording(self, audio: np.ndarray, sample_rate: int = 16000) -> Any:
        """Save a recording with the text box's sentence and the speaker's name; show why if it cannot be."""
        from ..app.data import RecordingError  # torch (audio): loaded when the tab is used

        try:
            clip = self.store.add(audio, self.sentence.value, self.speaker.value, source_rate=sample_rate)
        except RecordingError as err:
            self.show_message(f"not saved: {html.escape(str(err))}", "error")
            return None
        self.last_clip = clip
        self.show_message(f"saved <code>{html.escape(clip.id)}</code> ({clip.seconds:.1f} s, {clip.split}); "
                          "here is the next sentence", "success")
        self.next_sentence()
        self.refresh()
        self.clips.value = clip.id
        return clip

    def play_selected(self) -> Optional[bytes]:
        """Load the selected clip into the player."""
        if not self.clips.value:
            self.show_message("choose a clip first", "warning")
            return None
        data = (self.recordings_path / "wavs" / f"{self.clips.value}.wav").read_bytes()
        self.player.value = data
        self.player_box.children = [self.player]
        return data

    def delete_selected(self) -> Optional[str]:
        """Delete the selected clip (file and rows)."""
        from ..app.data import RecordingError  # torch (audio): loaded when the tab is used

        clip_id = self.clips.value
        if not clip_id:
            self.show_message("choose a clip first", "warning")
            return None
        try:
            self.store.delete(clip_id)
        except RecordingError as err:
            self.show_message(html.escape(str(err)), "error")
            return None
        self.show_message(f"deleted <code>{html.escape(clip_id)}</code>", "info")
        self.player_box.children = []
        self.refresh()
        return clip_id

    # --- listing -------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the speaker's clips, counts, checkpoints and adaptation runs again (called when the tab opens)."""
        if not self.sentence.value.strip():
            self.next_sentence()
        speaker = " ".join(self.speaker.value.split())
        clips = self.store.list(speaker or None)
        current = self.clips.value
        self.clips.options = [(clip_label(c), c.id) for c in reversed(clips)]  # newest first
        self.clips.value = current if current in [c.id for c in clips] else None
        self.counts.value = counts_html(self.store.counts(speaker or None), speaker)
        self._refresh_checkpoints()
        self.adaptations.value = adaptation_rows_html(self.adaptation_rows(speaker or None))

    def _refresh_checkpoints(self) -> None:
        from .test_panel import checkpoint_options  # the test panel's module imports torch (the Transcriber)

        current = self.checkpoint.value
        options = checkpoint_options(self.root)
        self.checkpoint.options = options
        values = [v for _, v in options]
        self.checkpoint.value = current if current in values else (values[0] if values else None)

    def adaptation_rows(self, speaker: Optional[str]) -> list[dict]:
        """{run, state, before, after} of the adaptation runs for `speaker` (all speakers' when None), newest first."""
        rows = []
        for run in list_runs(self.root):
            summary = training.adaptation_summary(run)  # imports the trainer (torch) on first use
            if summary is not None and (speaker is None or summary.get("speaker") == speaker):
                rows.append({"run": run.id, "state": run.status.get("state"), "before": summary.get("before"),
                             "after": summary.get("after")})
        return rows

    # --- adapting ------------------------------------------------------------------------------------------------
    def adapt(self) -> Any:
        """Start the adaptation run for the speaker from the chosen checkpoint; return its run (None if refused)."""
        speaker = " ".join(self.speaker.value.split())
        if not speaker:
            self.show_message("type your name first: the model adapts to your clips", "error")
            return None
        if not self.checkpoint.value:
            self.show_message("no checkpoint to start from: train a model first (the Training tab)", "error")
            return None
        self.show_message("scoring the starting checkpoint on your held-out clips, then starting...", "info")
        try:
            request = RunRequest(base=self.base, init_from=self.checkpoint.value, root=str(self.root),
                                 adaptation=Adaptation(speaker=speaker), minutes=float(self.minutes.value))
            handle = training.start(request, background=self.background)
        except (RunAlreadyActive, ValueError, FileNotFoundError) as err:
            self.show_message(html.escape(str(err).splitlines()[0]), "error")
            return None
        self.last_handle = handle
        self.show_message(f"adapting in run <code>{html.escape(handle.run.id)}</code> for "
                          f"{self.minutes.value:g} min: follow it in the Training tab", "success")
        self.refresh()
        if self.on_adapt is not None:
            self.on_adapt(handle.run)
        return handle.run

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()
