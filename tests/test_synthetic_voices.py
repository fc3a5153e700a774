"""The synthetic corpus's voice engines (espeak-ng, Festival), held-out voices per engine, numbers as said."""
from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from asr_poc.datasets import synthetic
from asr_poc.datasets.synthetic import SentenceGenerator, generate_corpus, number_words, voice_pools
from asr_poc.datasets.voices.base import Line
from asr_poc.datasets.voices.festival import scheme_script


def _rows(path: Path) -> list[list[str]]:
    return [line.split("|") for line in path.read_text().splitlines()]


def test_numbers_are_spelled_as_said() -> None:
    assert number_words(2024) == "two thousand and twenty-four"
    assert number_words(2500) == "two thousand five hundred"
    assert number_words(7_000_001) == "seven million and one"
    sentences = [SentenceGenerator(3).sentence() for _ in range(1)] + \
        [s for g in [SentenceGenerator(4)] for s in (g.sentence() for _ in range(800))]
    assert not any(ch.isdigit() for s in sentences for ch in s)
    assert any("o'clock" in s or "half past" in s for s in sentences)
    assert any("thousand" in s for s in sentences) and any("dollars" in s or "pounds" in s for s in sentences)


def test_corpus_has_both_engines_at_16_khz(small_corpus: Path) -> None:
    engines = Counter(voice.split(":")[0] for _, voice, _, _ in _rows(small_corpus / "voices.csv"))
    assert set(engines) == {"espeak", "festival"} and min(engines.values()) >= 15
    festival = [uid for uid, voice, _, _ in _rows(small_corpus / "voices.csv") if voice.startswith("festival:")]
    info = sf.info(str(small_corpus / "wavs" / f"{festival[0]}.wav"))
    assert info.samplerate == 16000 and info.subtype == "PCM_16" and 0.5 < info.duration < 15


def test_every_engine_holds_voices_out_of_training() -> None:
    pools = voice_pools({"espeak": ["en+m1", "en+m2", "en+f1", "en+f2", "en-us+m1"],
                         "festival": ["kal_diphone", "ked_diphone"]}, random.Random(0))
    for engine, splits in pools.items():
        assert splits["test"] and splits["dev"] and splits["train"]
        assert not set(splits["test"]) & set(splits["train"]) and not set(splits["dev"]) & set(splits["train"])
        assert all(v.startswith(engine + ":") for vs in splits.values() for v in vs)
    assert len(pools["festival"]["train"]) + 2 == 2 * len(synthetic.WARPS["festival"])  # warps make speakers
    assert sum(len(s["test"]) for s in pools.values()) == synthetic.HELD_OUT["test"]


def test_espeak_only_corpus(tmp_path: Path) -> None:
    out = generate_corpus(tmp_path / "c", utterances=12, seed=3, progress=False, engines=["espeak"])
    assert {v.split(":")[0] for _, v, _, _ in _rows(out / "voices.csv")} == {"espeak"}
    assert sf.info(str(out / "wavs" / "syn-00001.wav")).samplerate == 16000


def test_missing_festival_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "festival" else which(name))
    with pytest.raises(RuntimeError, match="apt-get install festival"):
        generate_corpus(tmp_path, utterances=5, progress=False, engines=["espeak", "festival"])
    with pytest.raises(ValueError, match="unknown voice engine"):
        generate_corpus(tmp_path, utterances=5, progress=False, engines=["espeak", "nope"])


def test_festival_script_sets_speed_pitch_and_quotes_text(tmp_path: Path) -> None:
    line = Line('He said "hi" \\ there', "kal_diphone@1.08", speed=200, pitch=70, wav=tmp_path / "a.wav")
    script = scheme_script([line], [tmp_path / "raw.wav"])
    assert "(voice_kal_diphone)" in script and "Duration_Stretch 0.825" in script
    assert "target_f0_mean 132.3" in script  # 105 Hz raised by (70 - 50) / 60 of an octave
    assert '(SynthText "He said  hi    there")' in script


def test_flite_speaks_its_own_two_people_at_the_line_speed(tmp_path: Path) -> None:
    from asr_poc.datasets.voices.flite import VOICES, FliteEngine, flite_command

    engine = FliteEngine()
    assert engine.voices() == list(VOICES)  # awb and rms; not kal or slt, whom Festival already speaks
    slow, fast = (Line("go forward ten meters", "rms@1.08", speed=s, pitch=50, wav=tmp_path / f"{s}.wav")
                  for s in (120, 220))
    assert "duration_stretch=1.375" in flite_command("flite", slow, slow.wav)
    engine.speak([slow, fast], jobs=2)
    durations = [sf.info(str(line.wav)).duration for line in (slow, fast)]
    assert sf.info(str(slow.wav)).samplerate == 16000
    assert durations[0] > 1.5 * durations[1] > 0.6
