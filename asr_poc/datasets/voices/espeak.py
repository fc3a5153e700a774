"""espeak-ng (formant synthesis): 8 English accents x 15 voice variants."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional

import soundfile as sf

from .base import Line, VoiceEngine, speak_lines, split_warp, write_wav

ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")


def espeak_executable() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed; install it with: sudo apt-get install espeak-ng")
    return exe


def available_accents(exe: str) -> list[str]:
    """The entries of `ACCENTS` that this espeak-ng has."""
    listing = subprocess.run([exe, "--voices=en"], capture_output=True, text=True, check=True).stdout
    languages = {line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1}
    return [v for v in ACCENTS if v in languages]


def speak_one(exe: str, text: str, voice: str, speed: int, pitch: int, wav: Path) -> None:
    """Speak `text` with `voice` (`<accent>+<variant>[@warp]`) into a 16 kHz `wav`."""
    name, warp = split_warp(voice)
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        raw = Path(tmp) / "out.wav"
        result = subprocess.run([exe, "-v", name, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                                capture_output=True, text=True)
        if result.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
            raise RuntimeError(f"espeak-ng failed for voice {name!r} on {text!r}: {result.stderr.strip()[:200]}")
        samples, rate = sf.read(str(raw), dtype="float32")
    write_wav(wav, samples, rate, warp)


class EspeakEngine(VoiceEngine):
    name = "espeak"

    def __init__(self) -> None:
        self.exe = espeak_executable()

    def voices(self) -> list[str]:
        return [f"{a}+{v}" for a in (available_accents(self.exe) or ["en"]) for v in VARIANTS]

    def speak(self, lines: list[Line], jobs: int = 2, done: Optional[Callable[[int], None]] = None) -> None:
        speak_lines(lambda ln: speak_one(self.exe, ln.text, ln.voice, ln.speed, ln.pitch, ln.wav), lines, jobs, done)
