"""Real human speech to train on: the Asterisk PBX prompts (`asr-poc prepare asterisk --out data/asterisk`).

Debian's `asterisk-core-sounds-en-g722` holds ~560 English prompts spoken by one professional speaker (Allison
Smith; CC-BY-SA-3.0, see `COPYRIGHT` in the prepared folder) as 16 kHz G.722, and `asterisk-core-sounds-en` their
scripts (`core-sounds-en.txt.gz`, `id: text` a line). `prepare` downloads both with `apt-get download` (or reads
the .deb files from `debs`), unpacks them with `dpkg-deb -x`, decodes the audio with ffmpeg and writes the
LJSpeech layout read by `AsteriskDataset`:

    metadata.csv   id|script|normalized text   (written last)
    splits.csv     id|split                    (80/10/10 by a hash of the text: one text never spans two splits)
    COPYRIGHT      the packages' licence text
    wavs/<id>.wav  16 kHz mono 16-bit

Scripts are made to say what is said (`script_to_text`): `#` -> pound, `*` -> star, a lone digit -> its word;
sound descriptions in brackets go. A prompt is dropped when that cannot be exact (numbers of several digits,
decimals, digits inside words, acronyms read letter by letter, nothing left but a description). Every prompt whose
id or text is in the real-check set's `asterisk` group is left out, so that set stays unseen.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from ..io import atomic_write_text
from ..text import normalize_text
from .ljspeech import LJSpeechDataset, hash_split
from .real_check import shipped_clips

PACKAGES = ("asterisk-core-sounds-en-g722", "asterisk-core-sounds-en")
SOUNDS_DIR = Path("usr/share/asterisk/sounds/en_US_f_Allison")
SCRIPTS_FILE = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
COPYRIGHT_FILE = Path("usr/share/doc/asterisk-core-sounds-en-g722/copyright")
CHECK_GROUP = "asterisk"
ID_PREFIX = "asterisk-"
SPLITS = {"train": 0.8, "dev": 0.1, "test": 0.1}
DIGITS = "zero one two three four five six seven eight nine".split()

_DESCRIPTION = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)")  # [ascending tones], <beep>, (simple tone sound plays)
_LONE_DIGIT = re.compile(r"(?<![\w.,])\d(?!\w|[.,]\d)")  # "press 1," but not 500, 28.8 or 3D
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")  # IAX, PBX: read letter by letter


def script_to_text(script: str) -> Optional[str]:
    """The normalized words a script line says, or None when they cannot be known exactly."""
    text = _DESCRIPTION.sub(" ", script).replace("#", " pound ").replace("*", " star ")
    text = _LONE_DIGIT.sub(lambda m: f" {DIGITS[int(m.group())]} ", text)
    if re.search(r"\d", text) or _ACRONYM.search(text):
        return None
    return normalize_text(text) or None


def read_scripts(path: Path) -> dict[str, str]:
    """{prompt: script} from `core-sounds-en.txt(.gz)`; a prompt is a path under the sounds folder, no suffix."""
    opener = gzip.open if path.suffix == ".gz" else open
    scripts = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, script = line.partition(":")
            if sep and name.strip() and not line.startswith(";"):
                scripts[name.strip()] = script.strip()
    return scripts


def prompt_id(prompt: str) -> str:
    """`digits/day-0` -> `asterisk-digits-day-0`: the real-check set names its Asterisk clips the same way."""
    return ID_PREFIX + prompt.replace("/", "-")


def check_set_prompts() -> tuple[set[str], set[str]]:
    """(ids, normalized texts) of the real-check set's `asterisk` group: never trained on."""
    clips = [c for c in shipped_clips() if c["group"] == CHECK_GROUP]
    return {c["id"] for c in clips}, {normalize_text(c["text"]) for c in clips}


def select_prompts(scripts: dict[str, str], audio: set[str], excluded_ids: set[str],
                   excluded_texts: set[str]) -> tuple[dict[str, str], dict[str, int]]:
    """({prompt: text} to keep, {reason: count} of the rest): a prompt needs audio, an exact text, and an id and a
    text that the check set does not hold."""
    kept, dropped = {}, {"no audio": 0, "inexact text": 0, "in the check set": 0}
    for prompt, script in sorted(scripts.items()):
        text = script_to_text(script)
        if prompt not in audio:
            dropped["no audio"] += 1
        elif text is None:
            dropped["inexact text"] += 1
        elif prompt_id(prompt) in excluded_ids or text in excluded_texts:
            dropped["in the check set"] += 1
        else:
            kept[prompt] = text
    return kept, dropped


def _run(cmd: list[str], what: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise RuntimeError(f"{cmd[0]} not found: it is needed to {what} (install it, e.g. apt-get install "
                           f"{'ffmpeg' if cmd[0] == 'ffmpeg' else 'apt dpkg'})")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"{cmd[0]} failed to {what}: {last}")


def download_debs(folder: Path) -> Path:
    """`apt-get download` the two packages into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise RuntimeError("apt-get not found: download " + " and ".join(PACKAGES) + " yourself and pass --debs DIR")
    done = subprocess.run(["apt-get", "download", *PACKAGES], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"apt-get download {' '.join(PACKAGES)} failed: {last} (run apt-get update, or pass --debs DIR)")
    return folder


def unpack_debs(debs: Path, root: Path) -> Path:
    """`dpkg-deb -x` the two packages found in `debs` into `root`."""
    for package in PACKAGES:
        found = sorted(Path(debs).glob(f"{package}_*.deb"))
        if not found:
            raise FileNotFoundError(f"no {package}_*.deb in {debs}")
        _run(["dpkg-deb", "-x", str(found[-1]), str(root)], f"unpack {found[-1].name}")
    return root


def decode_g722(src: Path, dst: Path) -> None:
    """G.722 -> 16 kHz mono PCM-16 WAV (atomic)."""
    tmp = dst.with_name(f".{dst.name}.tmp.wav")
    _run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "g722", "-i", str(src), "-ar", "16000", "-ac", "1",
          "-c:a", "pcm_s16le", str(tmp)], f"decode {src.name}")
    os.replace(tmp, dst)


def prepare_from_tree(root: Path, out: str | os.PathLike) -> tuple[Path, dict[str, int]]:
    """Write the data set from unpacked packages under `root`; return (out, {reason: prompts dropped})."""
    root, out = Path(root), Path(out)
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg not found: it is needed to decode the G.722 prompts (apt-get install ffmpeg)")
    sounds, scripts_file = root / SOUNDS_DIR, root / SCRIPTS_FILE
    if not scripts_file.is_file():
        raise FileNotFoundError(f"no {SCRIPTS_FILE} under {root}: is {PACKAGES[1]} unpacked there?")
    audio = {str(p.relative_to(sounds).with_suffix("")) for p in sounds.rglob("*.g722")}
    kept, dropped = select_prompts(read_scripts(scripts_file), audio, *check_set_prompts())
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "metadata.csv").unlink(missing_ok=True)
    for prompt in kept:
        decode_g722(sounds / f"{prompt}.g722", out / "wavs" / f"{prompt_id(prompt)}.wav")
    if (root / COPYRIGHT_FILE).is_file():
        shutil.copyfile(root / COPYRIGHT_FILE, out / "COPYRIGHT")
    lines = lambda rows: "".join("|".join(r) + "\n" for r in rows)  # noqa: E731
    atomic_write_text(out / "splits.csv", lines((prompt_id(p), hash_split(t, fractions=SPLITS)) for p, t in kept.items()))
    scripts = read_scripts(scripts_file)
    atomic_write_text(out / "metadata.csv",
                      lines((prompt_id(p), " ".join(scripts[p].split()).replace("|", " "), t) for p, t in kept.items()))
    return out, dropped


def prepare(out: str | os.PathLike, debs: Optional[str | os.PathLike] = None) -> tuple[Path, dict[str, int]]:
    """Build the data set in `out` from the packages (downloaded with apt-get unless `debs` holds them)."""
    with tempfile.TemporaryDirectory(prefix="asterisk-") as tmp:
        folder = Path(debs) if debs else download_debs(Path(tmp) / "debs")
        return prepare_from_tree(unpack_debs(folder, Path(tmp) / "root"), out)


class AsteriskDataset(LJSpeechDataset):
    """The Asterisk prompts written by `prepare` (LJSpeech layout with splits.csv)."""

    name = "asterisk"
    prepare_hint = "create it with: asr-poc prepare asterisk --out <path>"


DATASET = AsteriskDataset
