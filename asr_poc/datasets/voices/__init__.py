"""Speech engines that speak the synthetic corpus, one module per engine behind one interface (`base.py`).

An engine lists its voices and speaks `Line`s into 16 kHz mono 16-bit WAV files. Every engine takes the same
two knobs per line: `speed` in words per minute (165 is an ordinary pace) and `pitch` on espeak-ng's 0-99 scale
(50 is the voice's own). A voice name may end in `@<warp>` (e.g. `kal_diphone@1.12`): the audio is then
resampled as if the speaker's vocal tract were that much shorter (pitch and formants up, faster) -- one recorded
voice becomes several speakers.
"""
from __future__ import annotations

from .base import VoiceEngine
from .espeak import EspeakEngine
from .festival import FestivalEngine
from .flite import FliteEngine


def engine(name: str) -> VoiceEngine:
    """The engine called `name` (espeak, festival or flite); raises RuntimeError if it is not installed."""
    if name == "espeak":
        return EspeakEngine()
    if name == "festival":
        return FestivalEngine()
    if name == "flite":
        return FliteEngine()
    raise ValueError(f"unknown voice engine {name!r}: use espeak, festival or flite")
