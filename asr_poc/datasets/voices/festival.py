"""Festival (Debian): diphone voices recorded from people (kal, ked) and the HTS voice slt, spoken in batches.

One `festival -b` process speaks a whole batch from a generated Scheme script (hundreds of times faster than
real time); speed goes through `Duration_Stretch`, pitch through the diphone voices' F0 targets (`int_lr_params`).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import soundfile as sf

from .base import NORMAL_SPEED, Line, VoiceEngine, split_warp, write_wav

VOICE_DIRS = {"kal_diphone": "english/kal_diphone", "ked_diphone": "english/ked_diphone",
              "cmu_us_slt_arctic_hts": "us/cmu_us_slt_arctic_hts"}
F0 = {"kal_diphone": (105, 14), "ked_diphone": (105, 14)}  # the voices' own mean and spread of F0 (Hz)
VOICE_ROOTS = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))
BATCH = 100  # lines per festival process
HEAP_CELLS = 2_000_000  # the default 10M cells (320 MB) take seconds to set up on a busy machine
APT_HINT = "sudo apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", " ").replace('"', " ") + '"'


def scheme_script(lines: list[Line], raw_paths: list[Path]) -> str:
    """The Scheme program that speaks `lines` into `raw_paths` (16 kHz RIFF)."""
    out = []
    for line, raw in zip(lines, raw_paths):
        name, _ = split_warp(line.voice)
        out.append(f"(voice_{name})")
        out.append(f"(Parameter.set 'Duration_Stretch {NORMAL_SPEED / line.speed:.3f})")
        if name in F0:
            mean, std = F0[name]
            factor = 2 ** ((line.pitch - 50) / 60)
            out.append(f"(set! int_lr_params '((target_f0_mean {mean * factor:.1f}) (target_f0_std {std * factor:.1f})"
                       " (model_f0_mean 170) (model_f0_std 34)))")
        out.append(f"(set! utt (SynthText {_quote(line.text)}))")
        out.append("(utt.wave.resample utt 16000)")
        out.append(f"(utt.save.wave utt {_quote(str(raw))} 'riff)")
    return "\n".join(out) + "\n"


class FestivalEngine(VoiceEngine):
    name = "festival"

    def __init__(self) -> None:
        self.exe = shutil.which("festival")
        if self.exe is None:
            raise RuntimeError(f"Festival is not installed; install it with: {APT_HINT} (or use --engines espeak)")

    def voices(self) -> list[str]:
        found = [v for v, sub in VOICE_DIRS.items() if any((root / sub).is_dir() for root in VOICE_ROOTS)]
        if not found:
            raise RuntimeError(f"no Festival English voice is installed; install them with: {APT_HINT}")
        return found

    def _speak_batch(self, lines: list[Line]) -> None:
        with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
            raws = [Path(tmp) / f"{i}.wav" for i in range(len(lines))]
            script = Path(tmp) / "speak.scm"
            script.write_text(scheme_script(lines, raws), encoding="utf-8")
            result = subprocess.run([self.exe, "--heap", str(HEAP_CELLS), "-b", str(script)], capture_output=True,
                                    text=True)
            for line, raw in zip(lines, raws):
                if not raw.is_file() or raw.stat().st_size <= 44:
                    raise RuntimeError(f"festival failed for voice {line.voice!r} on {line.text!r}: "
                                       f"{(result.stderr or result.stdout).strip()[:200]}")
                samples, rate = sf.read(str(raw), dtype="float32")
                write_wav(line.wav, samples, rate, split_warp(line.voice)[1])

    def speak(self, lines: list[Line], jobs: int = 2, done: Optional[Callable[[int], None]] = None) -> None:
        batches = [lines[i : i + BATCH] for i in range(0, len(lines), BATCH)]
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            futures = [pool.submit(self._speak_batch, b) for b in batches]
            try:
                for batch, future in zip(batches, futures):
                    future.result()
                    if done:
                        done(len(batch))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
