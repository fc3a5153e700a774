"""`MicRecorder`: a browser-microphone widget (anywidget) that streams 16-bit PCM to the kernel while recording.

ipywebrtc's `AudioRecorder` works with JupyterLab 4 and Voila 0.5 but only hands over a finished WebM/Opus clip,
so nothing could be transcribed while the person speaks. This widget captures with getUserMedia and an
AudioWorklet (ScriptProcessor where that is missing), downsamples to 16 kHz in the browser, and sends 100 ms
chunks of int16 samples as binary comm buffers: no decoding, and a streaming model can show partial text live.
Its JavaScript (`recorder.js`) is inline in the widget: nothing is fetched from a CDN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import anywidget
import numpy as np
import traitlets as t

_HERE = Path(__file__).resolve().parent

CSS = """
.asr-mic { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.asr-mic-button { min-width: 110px; font-weight: 600; }
.asr-mic-button.asr-mic-recording { background: #c62828; color: white; }
.asr-mic-meter { display: inline-block; width: 120px; height: 8px; background: #e0e0e0; border-radius: 4px;
                 overflow: hidden; }
.asr-mic-level { display: block; height: 100%; width: 0%; background: #43a047; transition: width 80ms; }
.asr-mic-time { font-variant-numeric: tabular-nums; min-width: 48px; }
.asr-mic-note { color: #666; font-size: 12px; }
.asr-mic-note.asr-mic-error { color: #b00020; font-weight: 600; }
"""

ChunkCallback = Callable[[np.ndarray], None]


class MicRecorder(anywidget.AnyWidget):
    """Record button + level meter. Register callbacks with `on_start`, `on_chunk` (int16 samples at
    `sample_rate`), `on_stop` (the whole recording) and `on_error` (a message); `stop()` ends a recording."""

    _esm = (_HERE / "recorder.js").read_text()
    _css = CSS
    sample_rate = t.Int(16000).tag(sync=True)
    chunk_ms = t.Int(100).tag(sync=True)
    max_seconds = t.Float(60.0).tag(sync=True)
    recording = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    hint = t.Unicode("press Record, speak, then Stop").tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_class("asr-mic-recorder")
        self._chunks: list[np.ndarray] = []
        self.capture_rate: Optional[int] = None
        self.engine: Optional[str] = None
        self.lost_chunks = 0
        self._next_seq = 0
        self._callbacks: dict[str, list[Callable]] = {"start": [], "chunk": [], "stop": [], "error": []}
        self.on_msg(self._handle_message)

    # --- callbacks -----------------------------------------------------------------------------------------------
    def on_start(self, callback: Callable[[], None]) -> None:
        self._callbacks["start"].append(callback)

    def on_chunk(self, callback: ChunkCallback) -> None:
        self._callbacks["chunk"].append(callback)

    def on_stop(self, callback: ChunkCallback) -> None:
        self._callbacks["stop"].append(callback)

    def on_error(self, callback: Callable[[str], None]) -> None:
        self._callbacks["error"].append(callback)

    def stop(self) -> None:
        """Ask the browser to end the recording (it sends what it has, then `stop`)."""
        self.send({"type": "stop"})

    @property
    def audio(self) -> np.ndarray:
        """The current (or last) recording: int16 samples at `sample_rate`."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)

    @property
    def seconds(self) -> float:
        return sum(len(c) for c in self._chunks) / self.sample_rate

    # --- messages from the browser -------------------------------------------------------------------------------
    def _handle_message(self, _widget, content: dict, buffers: list) -> None:
        kind = content.get("type")
        if kind == "start":
            self._chunks, self._next_seq, self.lost_chunks = [], 0, 0
            self.capture_rate, self.engine = content.get("capture_rate"), content.get("engine")
            self._emit("start")
        elif kind == "chunk" and buffers:
            seq = int(content.get("seq", self._next_seq))
            self.lost_chunks += max(0, seq - self._next_seq)
            self._next_seq = seq + 1
            pcm = np.frombuffer(bytes(buffers[0]), dtype="<i2").astype(np.int16)
            self._chunks.append(pcm)
            self._emit("chunk", pcm)
        elif kind == "stop":
            self._emit("stop", self.audio)
        elif kind == "error":
            self._emit("error", str(content.get("message", "microphone error")))

    def _emit(self, kind: str, *args) -> None:
        for callback in list(self._callbacks[kind]):
            callback(*args)
