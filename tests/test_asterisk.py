"""The Asterisk prompts as training data: scripts made exact, check-set prompts left out (no apt-get here)."""
from __future__ import annotations

import gzip
import shutil
import subprocess

import pytest
import soundfile as sf

from asr_poc.datasets import asterisk
from asr_poc.datasets.ljspeech import read_pipe_csv
from asr_poc.datasets.real_check import shipped_clips


@pytest.mark.parametrize("script, text", [
    ("Please enter your password followed by the pound key.", "please enter your password followed by the pound key"),
    ("Enter a numeric dictation filename followed by # or just # to exit",
     "enter a numeric dictation filename followed by pound or just pound to exit"),
    ("press * to toggle pause", "press star to toggle pause"),
    ("Press 1 to accept this call, or 2 to reject it.", "press one to accept this call or two to reject it"),
    ("Call-Forward on Busy.", "call forward on busy"),
    ("at [@]", "at"),
    ("Please leave your message after the tone. (simple tone sound plays)", "please leave your message after the tone"),
    ("[ascending tones]", None),        # nothing said
    ("<beep ascending>", None),
    ("dial 500 to attempt a connection", None),  # five hundred? five oh oh?
    ("a 28.8 kilobit modem", None),
    ("3D audio enabled", None),
    ("IAX", None),                      # read letter by letter
])
def test_script_to_text(script, text):
    assert asterisk.script_to_text(script) == text


def test_check_set_prompts_are_the_asterisk_group():
    ids, texts = asterisk.check_set_prompts()
    assert len(ids) == 40 and all(i.startswith("asterisk-") for i in ids)
    assert "please enter your password followed by the pound key" in texts


@pytest.fixture
def fake_packages(tmp_path):
    """An unpacked pair of packages: six prompts with G.722 audio, one script without audio."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    check = [c for c in shipped_clips() if c["group"] == "asterisk"]
    same_text = check[1]["text"]  # a prompt under another name that says a check-set text
    scripts = {
        check[0]["id"].removeprefix("asterisk-"): "Whatever the script says.",  # a check-set id
        "other-name": same_text.capitalize() + ".",
        "followme/options": "press 1 to accept this call, or 2 to reject it",
        "digits/day-0": "Sunday",
        "demo-instruct": "dial 500 now",
        "beep": "[this is a simple beep tone]",
        "no-audio": "Goodbye.",
    }
    root = tmp_path / "root"
    sounds = root / asterisk.SOUNDS_DIR
    sounds.mkdir(parents=True)
    tone = tmp_path / "tone.g722"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=0.3:sample_rate=16000", "-c:a", "g722", "-f", "g722", str(tone)],
                   check=True)
    for prompt in scripts:
        if prompt != "no-audio":
            (sounds / f"{prompt}.g722").parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tone, sounds / f"{prompt}.g722")
    (root / asterisk.SCRIPTS_FILE).parent.mkdir(parents=True)
    lines = "; Core Asterisk Sounds in English\n\n" + "".join(f"{p}: {s}\n" for p, s in scripts.items())
    with gzip.open(root / asterisk.SCRIPTS_FILE, "wt", encoding="utf-8") as f:
        f.write(lines)
    return root


def test_prepare_keeps_exact_prompts_and_leaves_out_the_check_set(fake_packages, tmp_path):
    out, dropped = asterisk.prepare_from_tree(fake_packages, tmp_path / "out")
    rows = {r[0]: r for r in read_pipe_csv(out / "metadata.csv")}
    assert {i: r[2] for i, r in rows.items()} == {
        "asterisk-followme-options": "press one to accept this call or two to reject it",
        "asterisk-digits-day-0": "sunday"}
    assert dropped == {"no audio": 1, "inexact text": 2, "in the check set": 2}
    splits = dict(read_pipe_csv(out / "splits.csv"))
    assert set(splits) == set(rows) and set(splits.values()) <= {"train", "dev", "test"}
    info = sf.info(str(out / "wavs" / "asterisk-digits-day-0.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert abs(info.duration - 0.3) < 0.05
    assert not list((out / "wavs").glob(".*"))  # no temporary files left


def test_missing_tools_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get not found.*--debs DIR"):
        asterisk.download_debs(tmp_path / "debs")
    with pytest.raises(RuntimeError, match="ffmpeg not found"):
        asterisk.prepare_from_tree(tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no asterisk-core-sounds-en-g722_"):
        asterisk.unpack_debs(tmp_path, tmp_path / "root")
