"""The real-speech check set: built offline from clips shipped in the package, read by the `real-check` plugin."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import soundfile as sf

from asr_poc.cli import main
from asr_poc.datasets.real_check import CLIPS_DIR, clip_audio, prepare, read_groups, shipped_clips


@pytest.fixture(scope="module")
def real_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("real-check"))


def test_prepare_command_writes_the_ljspeech_layout_with_everything_in_test(tmp_path, capsys):
    out = tmp_path / "rc"
    assert main(["prepare", "real-check", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    rows = [line.split("|") for line in (out / "metadata.csv").read_text().splitlines()]
    clips = shipped_clips()
    assert [r[0] for r in rows] == [c["id"] for c in clips] and len(rows) >= 90
    assert all(len(r) == 3 and r[2] and r[2] == r[2].lower() for r in rows)
    assert {line.split("|")[1] for line in (out / "splits.csv").read_text().splitlines()} == {"test"}
    assert "public domain" in (out / "SOURCES.md").read_text()
    for uid, *_ in rows:
        info = sf.info(str(out / "wavs" / f"{uid}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 0.5 < info.duration < 30


def test_every_shipped_clip_has_a_licence_and_the_licence_files_ship_too():
    clips = shipped_clips()
    assert all(c["licence"] and c["source"] and c["group"] for c in clips)
    assert (CLIPS_DIR / "LICENSE-pocketsphinx.txt").read_text().startswith("Copyright (c) 1999-2016 Carnegie Mellon")
    for name in {m for c in clips for m in re.findall(r"LICENSE-[\w.-]+\.txt", c["licence"])}:
        assert (CLIPS_DIR / name).stat().st_size > 1000, name  # every licence file a clip names ships beside it
    assert "Allison Smith" in (CLIPS_DIR / "LICENSE-asterisk-core-sounds.txt").read_text()
    sources = (CLIPS_DIR / "SOURCES.md").read_text()
    assert all(f"| `{group}` |" in sources for group in {c["group"] for c in clips})  # each group has its row


def test_the_first_twelve_clips_keep_their_ids_and_every_group_is_real_speech_of_its_own():
    clips = shipped_clips()
    assert [c["id"] for c in clips[:12]] == [
        "librivox-austen-0870", "librivox-austen-0880", "librivox-austen-0890", "librivox-austen-0920",
        "librivox-austen-0930", "cards-001", "cards-002", "cards-003", "cards-004", "cards-005", "goforward", "forever"]
    groups = {}
    for c in clips:
        groups.setdefault(c["group"], []).append(c["id"])
    assert {g: len(ids) for g, ids in groups.items()} == {
        "librivox-austen": 5, "cmu": 7, "librispeech": 1, "commonvoice": 3, "jfk": 1, "praatio": 2, "mfa": 11,
        "librivox-sonnet": 14, "alsa": 8, "asterisk": 40}
    assert all(i.startswith(g.split("-")[0]) for g, ids in groups.items() if g != "cmu" for i in ids)
    assert len({c["text"] for c in clips if c["group"] == "asterisk"}) == 40  # no prompt twice
    for c in clips:  # transcripts as models are scored on them: lower case, no digits, no punctuation but '
        assert re.fullmatch(r"[a-z']+( [a-z']+)*", c["text"]), c
        assert clip_audio(c["id"]) is not None, c["id"]


def test_a_clips_csv_row_without_its_group_is_one_clear_error(tmp_path):
    (tmp_path / "clips.csv").write_text("a|hello|made here|CC0\n")
    with pytest.raises(ValueError, match="line 1: expected id\\|text\\|source\\|licence\\|group"):
        shipped_clips(tmp_path)


def test_prepare_resamples_a_clip_that_is_not_16_khz(tmp_path):
    clips = tmp_path / "clips"
    (clips / "wavs").mkdir(parents=True)
    (clips / "SOURCES.md").write_text("test clips\n")
    (clips / "clips.csv").write_text("a|Hello there.|made here|CC0|here\n")
    audio, rate = sf.read(str(CLIPS_DIR / "wavs" / "goforward.wav"))
    import numpy as np

    stereo_8k = np.stack([audio[::2], audio[::2]], axis=1)
    sf.write(str(clips / "wavs" / "a.wav"), stereo_8k, rate // 2)
    out = prepare(tmp_path / "out", clips_dir=clips)
    info = sf.info(str(out / "wavs" / "a.wav"))
    assert (info.samplerate, info.channels) == (16000, 1)
    assert abs(info.duration - len(stereo_8k) / (rate // 2)) < 0.01
    assert (out / "metadata.csv").read_text() == "a|Hello there.|hello there\n"


def test_a_missing_clip_is_one_clear_error_and_writes_no_metadata(tmp_path):
    clips = tmp_path / "clips"
    (clips / "wavs").mkdir(parents=True)
    (clips / "clips.csv").write_text("gone|text|source|licence|group\n")
    with pytest.raises(FileNotFoundError, match="gone"):
        prepare(tmp_path / "out", clips_dir=clips)
    assert not (tmp_path / "out" / "metadata.csv").exists()


def test_the_real_check_plugin_reads_the_test_split(real_check):
    from asr_poc.config import load_config
    from asr_poc.plugins import load_dataset

    cfg = load_config(None, ["dataset=real-check", f"datasets.real-check.path={real_check}"])
    section = cfg["datasets"]["real-check"]
    test = load_dataset("real-check", section, "test")
    assert len(test) == len(shipped_clips())
    item = test[[u.id for u in test.items].index("goforward")]
    assert item["text"] == "go forward ten meters" and item["waveform"].shape[0] > 16000
    assert len(load_dataset("real-check", section, "train")) == 0


def test_sources_csv_names_each_clips_group_and_the_groups_key_scores_one_source(real_check):
    from asr_poc.config import load_config
    from asr_poc.plugins import load_dataset

    groups = read_groups(real_check)
    assert groups["goforward"] == "cmu" and groups["jfk-inaugural"] == "jfk" and len(groups) == len(shipped_clips())
    base = ["dataset=real-check", f"datasets.real-check.path={real_check}"]
    section = load_config(None, [*base, "datasets.real-check.groups=[jfk, praatio]"])["datasets"]["real-check"]
    test = load_dataset("real-check", section, "test")
    assert sorted(u.id for u in test.items) == ["jfk-inaugural", "praatio-bobby", "praatio-mary"]
    section = load_config(None, [*base, "datasets.real-check.groups=[nope]"])["datasets"]["real-check"]
    with pytest.raises(ValueError, match="no group nope .groups: alsa, asterisk"):
        load_dataset("real-check", section, "test")


def test_a_missing_real_check_folder_says_how_to_build_it(tmp_path):
    from asr_poc.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="asr-poc prepare real-check"):
        load_config(None, ["dataset=real-check", f"datasets.real-check.path={tmp_path / 'none'}"])
