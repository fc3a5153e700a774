"""Test panel: pick a checkpoint from under `checkpoints/`, upload audio or speak into the microphone, read the
transcript with its duration, processing time and real-time factor, and play the audio back.

The panel is layout and event wiring: what it does is `asr_poc.app.recognition` (a session per checkpoint and
decoding; its file path and its live stream share one decoder, so a recording ends in the text the same audio gets
as an upload; reference recognisers and an A/B checkpoint on the same clip). Transcription runs on one worker
thread, so the widgets stay responsive and a model is never used by two calls at once. Microphone chunks are fed
to the session's stream as they arrive and the partial text is shown while the person speaks; if streaming fails,
the recording is transcribed whole when it stops.
"""
from __future__ import annotations

import html
import io
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import ipywidgets as w
import numpy as np
import soundfile as sf

from ..app.runs import default_root, list_runs
from ..app.settings import load_section, set_decode_threads
from .recorder import MicRecorder
from .style import error_span, message_html

if TYPE_CHECKING:  # torch comes with these: a page that never opens the Test tab does not import it
    from ..app.recognition import LiveStream, RecognitionSession, SessionCache

UPLOAD_TYPES = "audio/*,.wav,.flac,.ogg,.oga,.opus,.mp3,.webm,.m4a"
MAX_SECONDS = 120.0
# An upload arrives as one websocket message (serve.WEBSOCKET_MAX_MESSAGE_BYTES stays above this): room for
# MAX_SECONDS of 48 kHz stereo 32-bit float WAV, the largest common uncompressed recording.
MAX_UPLOAD_BYTES = 48 * 1024 * 1024
LIVE_EVERY = 0.25  # seconds between partial transcripts while recording


def checkpoint_options(root: Path) -> list[tuple[str, str]]:
    """(label, path) of best.pt and last.pt of every run under `root`, newest run first."""
    options = []
    for run in list_runs(root):
        status = run.status
        for name in ("best.pt", "last.pt"):
            path = run.path / name
            if path.is_file():
                cer = status.get("best_cer") if name == "best.pt" else None
                extra = f" (dev CER {cer:.3f})" if cer is not None else f" (step {status.get('step', '?')})"
                options.append((f"{run.id} / {name}{extra}", str(path)))
    return options


def default_decoding(choices: list[tuple[str, dict]]) -> int:
    """The choice the Test tab starts with: beam search with the English word LM when it is built (it cut whisper-ctc's
    real-speech WER by a quarter, tuned on half of real-check: benchmarks/README.md), else greedy."""
    english = [i for i, (label, _) in enumerate(choices) if "English" in label]
    return english[0] if english else 0


def upload_refused(name: str, reason: str) -> str:
    """The Test tab's one line for an upload it cannot use (HTML): the file's name and why."""
    return f"<code>{html.escape(name)}</code> cannot be used: {html.escape(reason)}"


def upload_too_large(name: str, size: int, max_seconds: float) -> str:
    """The Test tab's one-line refusal of an upload over MAX_UPLOAD_BYTES (HTML)."""
    return upload_refused(name, f"it is {size / 2**20:.1f} MiB; uploads are limited to {MAX_UPLOAD_BYTES / 2**20:.0f} "
                                f"MiB and {max_seconds:g} s (compress it, e.g. to FLAC or Opus, or cut it)")


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit WAV of float or int16 samples, for the browser's audio player."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def comparison_html(rows: list) -> str:
    """Side-by-side table: system, transcript, processing time, real-time factor (each row a side_by_side.Row)."""
    cells = []
    for row in rows:
        if row.error:
            result = f"<td colspan='3'>{error_span(html.escape(row.error))}</td>"
        else:
            text = html.escape(row.text) if row.text else "<i>(no words recognised)</i>"
            speed = f"{row.rtf:.4f} ({1 / row.rtf:.0f}x faster than real time)" if row.rtf else "-"
            result = f"<td>{text}</td><td>{row.compute_seconds:.3f} s</td><td>{speed}</td>"
        cells.append(f"<tr><td><b>{html.escape(row.name)}</b></td>{result}</tr>")
    return ("<table class='asr-side-by-side' style='border-collapse:collapse;margin:6px 0'>"
            "<tr><th align='left'>system</th><th align='left'>transcript</th><th align='left'>processing</th>"
            f"<th align='left'>real-time factor</th></tr>{''.join(cells)}</table>")


class TestPanel(w.VBox):
    """The test tab. `root` is the folder of runs (default: the config's checkpoint_dir)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, root: Optional[os.PathLike] = None, config_path: Optional[str] = None,
                 overrides: tuple[str, ...] = (), max_seconds: float = MAX_SECONDS, preload: bool = True):
        self.root = Path(root) if root else default_root({"checkpoint_dir": load_section("checkpoint_dir", config_path, list(overrides))})
        self.max_seconds = max_seconds
        self._sessions: Optional[SessionCache] = None  # loaded with the first checkpoint (imports torch)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-poc-transcribe")
        self._pending: list[np.ndarray] = []
        self._pending_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._live_scheduled = False
        self._stream: Optional[LiveStream] = None
        self._stream_session: Optional[RecognitionSession] = None
        self._last_live = 0.0
        self.last_result: Optional[dict] = None
        self.last_comparison: list[dict] = []

        self.checkpoint = w.Dropdown(description="checkpoint", style={"description_width": "92px"},
                                     layout=w.Layout(width="560px"))
        self.compare_with = w.Dropdown(description="A/B with", style={"description_width": "92px"},
                                       layout=w.Layout(width="560px"))
        self.compare_with.add_class("asr-compare-with")
        self.reference = w.Checkbox(value=True, description="PocketSphinx beside it", indent=False,
                                    layout=w.Layout(width="220px"))
        self.reference.add_class("asr-reference")
        self.whisper_reference = w.Checkbox(value=True, description="Whisper tiny.en beside it", indent=False,
                                            layout=w.Layout(width="220px"))
        self.whisper_reference.add_class("asr-reference-whisper")
        from ..app.language_models import decoding_choices  # light: no torch

        choices = decoding_choices({"decoding": load_section("decoding", config_path, list(overrides))})
        self._decoding_sections = dict(enumerate(section for _, section in choices))
        self.decoding = w.Dropdown(description="decoding", options=[(label, i) for i, (label, _) in enumerate(choices)],
                                   value=default_decoding(choices), style={"description_width": "92px"},
                                   layout=w.Layout(width="560px"))
        self.decoding.add_class("asr-decoding")
        self.comparison = w.HTML("")
        self.comparison.add_class("asr-comparison")
        self.refresh_button = w.Button(icon="refresh", tooltip="list checkpoints again",
                                       layout=w.Layout(width="40px"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.upload = w.FileUpload(accept=UPLOAD_TYPES, multiple=False, description="Upload audio",
                                   layout=w.Layout(width="160px"))
        self.upload.add_class("asr-upload")
        self.upload.observe(self._uploaded, "value")
        self.mic = MicRecorder(max_seconds=max_seconds)
        self.mic.on_start(self._mic_started)
        self.mic.on_chunk(self._mic_chunk)
        self.mic.on_stop(self._mic_stopped)
        self.mic.on_error(lambda message: self.show_message(html.escape(message), "error"))

        self.message = w.HTML("")
        self.message.add_class("asr-test-message")
        self.transcript = w.HTML("<i>the transcript appears here</i>")
        self.transcript.add_class("asr-transcript")
        self.stats = w.HTML("")
        self.stats.add_class("asr-stats")
        self.player = w.Audio(format="wav", autoplay=False, controls=True, layout=w.Layout(width="320px"))
        self.player.add_class("asr-player")
        self.player_box = w.Box([])  # the player joins the page with the first audio (an empty one errors)
        super().__init__([
            w.HBox([self.checkpoint, self.refresh_button]),
            w.HBox([self.compare_with, self.reference, self.whisper_reference], layout=w.Layout(align_items="center")),
            self.decoding,
            w.HBox([w.HTML("<b>file:</b>", layout=w.Layout(width="100px")), self.upload],
                   layout=w.Layout(align_items="center")),
            w.HBox([w.HTML("<b>microphone:</b>", layout=w.Layout(width="100px")), self.mic],
                   layout=w.Layout(align_items="center")),
            self.message, self.transcript, self.stats, self.comparison, self.player_box,
        ], layout=w.Layout(width="100%"))
        self.add_class("asr-test-panel")
        self._refreshing = False
        self.checkpoint.observe(self._checkpoint_chosen, "value")
        self.refresh(preload=preload)  # the dashboard preloads when the tab is opened: torch only if it is used

    # --- checkpoints ---------------------------------------------------------------------------------------------
    def refresh(self, preload: bool = True) -> None:
        """List the checkpoints again, keeping the selection when it still exists (and load the chosen one)."""
        current = self.checkpoint.value
        options = checkpoint_options(self.root)
        self._refreshing = True
        try:
            self.checkpoint.options = options
            values = [v for _, v in options]
            self.checkpoint.value = current if current in values else (values[0] if values else None)
            other = self.compare_with.value
            self.compare_with.options = [("(none)", None)] + options
            self.compare_with.value = other if other in values else None
        finally:
            self._refreshing = False
        if self.checkpoint.value and preload:
            self.submit(self._preload)  # so that the first recording or upload does not wait for the model
        if not options:
            self.show_message("no checkpoints yet: train a model first (the Training tab)", "warning")

    def _checkpoint_chosen(self, change: dict) -> None:
        if change["new"] and not self._refreshing:
            self.message.value = ""
            self.submit(self._preload)

    def session(self, value: Optional[str] = None) -> RecognitionSession:
        """The chosen checkpoint's (or `value`'s) recognition session with the chosen decoding, loaded once per file
        version; only files under the runs root."""
        from ..app.recognition import SessionCache  # imports torch: only when a checkpoint is used

        value = value or self.checkpoint.value
        if not value:
            raise LookupError("choose a checkpoint first (none found under "
                              f"{self.root}; train a model in the Training tab)")
        path = Path(value).resolve()
        if not path.is_relative_to(self.root.resolve()) or path.suffix != ".pt":
            raise PermissionError(f"{path} is not a checkpoint under {self.root}")
        with self._load_lock:  # the preload on the worker thread and a caller here must not load it twice
            if self._sessions is None:
                self._sessions = SessionCache(max_seconds=self.max_seconds)
        keep = (self.checkpoint.value, self.compare_with.value)  # the A/B pair stays loaded
        from ..app.recognition import LMError, NoCTCOutput

        try:
            return self._sessions.get(path, self._decoding_sections[self.decoding.value], keep=keep)
        except NoCTCOutput:  # e.g. whisper: its own decoder (models.whisper.beam_size), whatever is chosen for CTC
            session = self._sessions.get(path, None, keep=keep)
            self.show_message(f"{session.model_name} decodes with its own decoder: the Decoding choice applies to "
                              "character CTC models", "info")
            return session
        except LMError:  # a vocabulary the LM cannot spell
            session = self._sessions.get(path, None, keep=keep)
            self.show_message(f"{session.model_name} decodes greedily here: the English word LM cannot spell its "
                              "vocabulary", "info")
            return session

    def _preload(self) -> None:
        try:
            session = self.session()
            # one short decode, so that torch's first-call set-up is not counted in the first real timing
            session.transcribe(np.zeros(session.sample_rate // 2, dtype=np.float32))
        except Exception as err:  # shown now rather than at the first transcription
            self.show_message(html.escape(f"cannot load {self.checkpoint.value}: {err}"), "error")

    # --- uploads -------------------------------------------------------------------------------------------------
    def _uploaded(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name, data = item.get("name", "upload"), bytes(item.get("content", b""))
        self.upload.value = ()  # so that the same file can be chosen again
        if len(data) > MAX_UPLOAD_BYTES:
            self.show_message(upload_too_large(name, len(data), self.max_seconds), "error")
            return
        self.submit(self.transcribe_bytes, data, name)

    def transcribe_bytes(self, data: bytes, name: str = "upload") -> Optional[dict]:
        """Transcribe an uploaded file's bytes and show the result (or why it could not be read)."""
        from ..app.audio import AudioError, load_clip  # imports torch, as the model does

        self.show_message(f"transcribing <code>{html.escape(name)}</code>...", "info")
        try:
            session = self.session()
            samples = load_clip(data, session.sample_rate, max_seconds=self.max_seconds)
            result = session.transcribe(samples)
        except AudioError as err:
            self.show_message(upload_refused(name, str(err)), "error")
            return None
        except Exception as err:
            self.show_message(html.escape(f"{type(err).__name__}: {err}"), "error")
            return None
        return self.show_result(result.text, result.audio_seconds, result.compute_seconds, samples,
                                session.sample_rate, source=name)

    # --- microphone ----------------------------------------------------------------------------------------------
    def _mic_started(self) -> None:
        with self._pending_lock:
            self._pending.clear()
        self.submit(self._open_session)

    def _open_session(self) -> None:
        self._stream, self._stream_session = None, None
        try:
            session = self.session()
        except Exception as err:
            self.show_message(html.escape(str(err)), "error")
            self.mic.stop()
            return
        self._stream_session = session
        self._stream = session.open_stream(source_rate=self.mic.sample_rate)
        self.show_message("listening: the text follows your speech", "info")
        self.transcript.value = "<i>...</i>"
        self._last_live = time.monotonic()

    def _mic_chunk(self, pcm: np.ndarray) -> None:
        with self._pending_lock:
            self._pending.append(pcm)
            if self._live_scheduled:
                return
            self._live_scheduled = True
        self.submit(self._live_update)

    def _take_pending(self) -> np.ndarray:
        with self._pending_lock:
            chunks, self._pending = self._pending, []
            self._live_scheduled = False
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def _live_update(self) -> None:
        """Push what arrived since the last update (at most every LIVE_EVERY s) and show the partial text."""
        wait = LIVE_EVERY - (time.monotonic() - self._last_live)
        if wait > 0:
            time.sleep(wait)
        self._last_live = time.monotonic()
        pcm = self._take_pending()
        seconds = self.mic.seconds
        if self._stream is None or not len(pcm):
            if self._stream_session is not None:
                self.stats.value = f"received {seconds:.1f} s of audio"
            return
        try:
            partial = self._stream.feed(pcm)
        except Exception as err:
            self.show_message(html.escape(f"streaming failed: {type(err).__name__}: {err}"), "error")
            self._stream = None
            return
        self.transcript.value = (f"<span class='asr-partial' style='color:#555'>{html.escape(partial.text)}</span>"
                                 if partial.text else "<i>...</i>")
        self.stats.value = (f"received {seconds:.1f} s of audio · live text as it comes, "
                            f"{self._stream.compute_seconds:.3f} s of compute so far")

    def _mic_stopped(self, audio: np.ndarray) -> None:
        self.submit(self._finish_recording, audio)

    def _finish_recording(self, audio: np.ndarray) -> Optional[dict]:
        from ..app.audio import AudioError  # imports torch, which the session has loaded already

        session, stream = self._stream_session, self._stream
        if session is None:
            return None
        rate = self.mic.sample_rate
        if not len(audio):
            self.show_message("the recording is empty: was the microphone muted?", "error")
            return None
        try:
            if stream is not None:  # the final text: the whole stream through the session's decoder
                rest = self._take_pending()
                if len(rest):
                    stream.feed(rest)
                final = stream.finish()
                text, compute, seconds = final.text, stream.compute_seconds, stream.audio_seconds
                audio, rate = stream.audio, stream.sample_rate  # resampled once, in the stream
            else:
                result = session.transcribe(audio, source_rate=rate)
                text, compute, seconds = result.text, result.compute_seconds, result.audio_seconds
        except AudioError as err:
            self.show_message(f"the recording cannot be used: {html.escape(str(err))}", "error")
            return None
        except Exception as err:
            self.show_message(html.escape(f"{type(err).__name__}: {err}"), "error")
            return None
        finally:
            self._stream = None
        lost = f" ({self.mic.lost_chunks} chunks lost on the way)" if self.mic.lost_chunks else ""
        note = " (every live partial transcript and the final one)" if stream is not None else ""
        return self.show_result(text, seconds, compute, audio, rate, source="microphone" + lost, note=note)

    # --- output --------------------------------------------------------------------------------------------------
    def show_result(self, text: str, audio_seconds: float, compute_seconds: float, samples: np.ndarray,
                    sample_rate: int, source: str = "", note: str = "") -> dict:
        from ..app.evaluation import real_time_factor  # imports torch, which a transcription has loaded already

        rtf = real_time_factor(compute_seconds, audio_seconds)
        speed = f" ({1 / rtf:.0f}x faster than real time)" if rtf and rtf > 0 else ""
        self.transcript.value = (f"<div style='font-size:1.3em;padding:6px 0'>{html.escape(text)}</div>" if text
                                 else "<i>(no words recognised)</i>")
        self.stats.value = (f"{html.escape(source)}: audio <b>{audio_seconds:.2f} s</b> · processing "
                            f"<b>{compute_seconds:.3f} s</b>{html.escape(note)} · real-time factor <b>{rtf:.4f}</b>{speed}")
        self.player.value = wav_bytes(samples, sample_rate)
        self.player_box.children = [self.player]
        self.message.value = ""
        self.last_result = {"text": text, "audio_seconds": audio_seconds, "compute_seconds": compute_seconds,
                            "rtf": rtf, "source": source}
        self.last_comparison = self.compare(samples, sample_rate, self.last_result)
        return self.last_result

    def compare(self, samples: np.ndarray, sample_rate: int, main: dict) -> list[dict]:
        """The same clip through the A/B checkpoint and the ticked reference recognisers, in a table beside the
        chosen checkpoint's `main` result; returns the rows (empty when none is chosen)."""
        from ..app.recognition import Row, compare  # imports torch, which the transcription has loaded already

        labels = {value: label.split(" (")[0] for label, value in self.checkpoint.options}
        others, failed = [], []
        other = self.compare_with.value
        if other and other != self.checkpoint.value:
            try:
                others.append((labels.get(other, other), self.session(other)))
            except Exception as err:  # shown in its row
                failed.append(Row(labels.get(other, other), error=f"cannot load it: {err}".splitlines()[0]))
        references = [name for box, name in ((self.reference, "pocketsphinx"),
                                             (self.whisper_reference, "whisper-tiny.en")) if box.value]
        if not others and not failed and not references:
            self.comparison.value = ""
            return []
        first = Row(labels.get(self.checkpoint.value, "chosen checkpoint"), main["text"], main["audio_seconds"],
                    main["compute_seconds"])
        rows = compare(samples, sample_rate, first, others, references)
        rows = rows[:1 + len(others)] + failed + rows[1 + len(others):]
        self.comparison.value = comparison_html(rows)
        return [row.to_dict() for row in rows]

    def show_message(self, text: str, level: str = "info") -> None:
        self.message.value = message_html(text, level)

    def submit(self, fn: Callable, *args) -> Future:
        """Run `fn` on the transcription thread; an unexpected error is shown in the panel, which keeps working."""
        def guarded():
            try:
                set_decode_threads(self.root)  # one thread while a run trains (asr_poc/threads.py)
                return fn(*args)
            except Exception as err:
                self.show_message(html.escape(f"{type(err).__name__}: {err}"), "error")
                return None
        return self._executor.submit(guarded)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()
