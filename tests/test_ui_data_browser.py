"""The Data tab: a data set split's utterances, filtered by text and voice, with totals that match the corpus files,
a duration histogram and playback; a data set that is not there gets one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from asr_poc.corpus_index import corpus_entries, filter_entries
from asr_poc.ui.data_browser import DataBrowser


def corpus_table(corpus: Path, split: str) -> dict[str, tuple[str, str, float]]:
    """{id: (text, voice, seconds)} of a split, read straight from the corpus files."""
    rows = lambda name: [line.split("|") for line in (corpus / name).read_text().splitlines()]  # noqa: E731
    splits = dict(r[:2] for r in rows("splits.csv"))
    voices = {r[0]: r[1] for r in rows("voices.csv")}
    return {r[0]: (r[2], voices[r[0]], sf.info(str(corpus / "wavs" / f"{r[0]}.wav")).duration)
            for r in rows("metadata.csv") if splits[r[0]] == split}


def test_browser_totals_filters_histogram_and_playback_match_the_corpus(small_corpus: Path):
    browser = DataBrowser(overrides=[f"datasets.synthetic.path={small_corpus}"])
    assert browser.entries == [] and browser.dataset.options == (), "nothing is read before the tab opens"
    browser.refresh()
    assert browser.dataset.value == "synthetic" and "real-check" in browser.dataset.options
    browser.split.value = "train"
    expected = corpus_table(small_corpus, "train")
    assert [e.id for e in browser.entries] == list(expected)
    assert {e.id: (e.text, e.speaker) for e in browser.entries} == {i: v[:2] for i, v in expected.items()}
    seconds = sum(v[2] for v in expected.values())
    assert f"<b>{len(expected)}</b> utterances" in browser.totals.value
    assert f"<b>{seconds / 3600:.2f} h</b> ({seconds / 60:.1f} min)" in browser.totals.value
    assert sum(browser.bars.y) == len(expected)

    voice = browser.speaker.options[0]  # the voice with most utterances
    browser.speaker.value = voice
    with_voice = {i for i, v in expected.items() if v[1] == voice}
    assert {e.id for e in browser.matches} == with_voice and sum(browser.bars.y) == len(with_voice)
    assert f"(of {len(expected)}," in browser.totals.value

    browser.speaker.value = "festival"  # part of a name: every Festival voice
    assert {e.id for e in browser.matches} == {i for i, v in expected.items() if v[1].startswith("festival:")}

    browser.speaker.value = ""
    some_id, (text, _, _) = next(iter(expected.items()))
    word = max(text.split(), key=len)
    browser.text.value = word.upper()
    assert {e.id for e in browser.matches} == {i for i, v in expected.items() if word in v[0]}
    assert f"<code>{some_id}</code>" in browser.table.value

    assert browser.pick.options[0] == ("(choose an utterance to hear it)", "") and browser.player.children == ()
    browser.pick.value = some_id
    assert browser.audio.value == (small_corpus / "wavs" / f"{some_id}.wav").read_bytes()
    assert browser.player.children == (browser.audio,)


def test_a_data_set_that_is_not_there_gets_one_line_and_the_tab_stays_usable(small_corpus: Path, tmp_path: Path):
    browser = DataBrowser(overrides=[f"datasets.synthetic.path={small_corpus}",
                                     f"datasets.ljspeech.path={tmp_path / 'nothing'}"])
    browser.refresh()
    browser.dataset.value = "ljspeech"
    assert "not found" in browser.message.value and browser.entries == [] and "<b>0</b> utterances" in \
        browser.totals.value
    browser.dataset.value = "synthetic"
    assert browser.message.value == "" and browser.entries


def test_the_index_is_cached_until_the_corpus_changes(small_corpus: Path, tmp_path: Path):
    import shutil

    corpus = tmp_path / "copy"
    shutil.copytree(small_corpus, corpus)
    sets = [f"datasets.synthetic.path={corpus}"]
    first = corpus_entries("synthetic", "test", overrides=sets)
    assert corpus_entries("synthetic", "test", overrides=sets) is first, "read once"
    lines = (corpus / "metadata.csv").read_text().splitlines()
    dropped = first[0].id
    (corpus / "metadata.csv").write_text("".join(line + "\n" for line in lines if not line.startswith(dropped + "|")))
    again = corpus_entries("synthetic", "test", overrides=sets)
    assert [e.id for e in again] == [e.id for e in first[1:]], "a changed metadata.csv is read again"


@pytest.mark.parametrize("speaker, expected", [("espeak:en-us+m1", ["a"]), ("ESPEAK", ["a", "b"]), ("", ["a", "b", "c"])])
def test_filter_by_speaker_is_exact_when_a_name_matches_else_by_part(speaker: str, expected: list[str]):
    from asr_poc.corpus_index import Entry

    entries = [Entry("a", "one", 1.0, "espeak:en-us+m1"), Entry("b", "two", 1.0, "espeak:en-us+m10"),
               Entry("c", "three", 1.0, "festival:kal")]
    assert [e.id for e in filter_entries(entries, speaker=speaker)] == expected
