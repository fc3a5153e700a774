"""An audio player for a file on the server: it joins the page with the first file (an empty player makes the browser
fetch an empty clip and log an error), and a file that is gone gets one line instead of a player."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import ipywidgets as w


class FilePlayer(w.Box):
    """`load(path)` puts the file's bytes in the player; it returns None, or why it could not."""

    def __init__(self):
        self.audio = w.Audio(value=b"", format="wav", autoplay=False, controls=True, layout=w.Layout(width="320px"))
        self.audio.add_class("asr-player")
        super().__init__([], layout=w.Layout(align_items="center"))

    def load(self, path: Optional[str | os.PathLike]) -> Optional[str]:
        if not path or not Path(path).is_file():
            self.children = []
            return f"the audio file {path} is gone" if path else "no audio file is known for it"
        self.audio.format = Path(path).suffix.lstrip(".").lower() or "wav"
        self.audio.value = Path(path).read_bytes()
        self.children = [self.audio]
        return None
