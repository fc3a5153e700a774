"""Flite (Debian `flite`): CMU's statistical parametric voices built from the ARCTIC recordings of two more people,
awb (Scottish English, male) and rms (US English, male). Its kal and slt are the speakers Festival already has,
so they are not offered (a held-out Festival voice must not be heard in training through Flite).

Speed goes through `duration_stretch`, one `flite` process per line (fast: far quicker than real time). These voices
ignore Flite's F0 target, so a line's `pitch` is not used: the vocal-tract warps (`@0.92` ...) vary pitch and
formants instead.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional

import soundfile as sf

from .base import NORMAL_SPEED, Line, VoiceEngine, speak_lines, split_warp, write_wav

VOICES = ("awb", "rms")  # not kal, kal16, slt: Festival's speakers
APT_HINT = "sudo apt-get install flite"


def flite_executable() -> str:
    exe = shutil.which("flite")
    if exe is None:
        raise RuntimeError(f"Flite is not installed; install it with: {APT_HINT} (or leave flite out of --engines)")
    return exe


def flite_command(exe: str, line: Line, wav: Path) -> list[str]:
    """The `flite` call that speaks `line` at its speed (its @warp is applied afterwards) into `wav`."""
    name, _ = split_warp(line.voice)
    return [exe, "-voice", name, "--setf", f"duration_stretch={NORMAL_SPEED / line.speed:.3f}", "-t", line.text,
            "-o", str(wav)]


def speak_one(exe: str, line: Line) -> None:
    """Speak `line` into its 16 kHz `wav`."""
    name, warp = split_warp(line.voice)
    with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
        raw = Path(tmp) / "out.wav"
        result = subprocess.run(flite_command(exe, line, raw), capture_output=True, text=True)
        if result.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
            raise RuntimeError(f"flite failed for voice {name!r} on {line.text!r}: "
                               f"{(result.stderr or result.stdout).strip()[:200]}")
        samples, rate = sf.read(str(raw), dtype="float32")
    write_wav(line.wav, samples, rate, warp)


class FliteEngine(VoiceEngine):
    name = "flite"

    def __init__(self) -> None:
        self.exe = flite_executable()

    def voices(self) -> list[str]:
        listing = subprocess.run([self.exe, "-lv"], capture_output=True, text=True).stdout
        offered = set(listing.split(":", 1)[-1].split())
        found = [v for v in VOICES if v in offered]
        if not found:
            raise RuntimeError(f"this flite has none of the voices {', '.join(VOICES)} ({listing.strip()[:120]})")
        return found

    def speak(self, lines: list[Line], jobs: int = 2, done: Optional[Callable[[int], None]] = None) -> None:
        speak_lines(lambda line: speak_one(self.exe, line), lines, jobs, done)
