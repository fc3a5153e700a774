"""The Runs tab's error panel: worst utterances of an evaluation with coloured differences, playback, two runs side
by side, confusions; and it stays light (no torch)."""
from __future__ import annotations

import subprocess
import sys
import base64
from pathlib import Path

from asr_poc.analysis import build_details, details_path, write_details
from asr_poc.runs import Run
from asr_poc.ui.error_panel import ErrorPanel, hypothesis_html
from conftest import tiny_config

REFS = {"u1": "go to the big red house", "u2": "open the door", "u3": "a cat sat here"}


def write_run_details(corpus: Path, root: Path, hyps: dict[str, str]) -> Run:
    run = Run.create(tiny_config(corpus, root))
    ids = list(hyps)
    audio = {i: str(corpus / "wavs" / f"syn-0000{n}.wav") for n, i in enumerate(ids, start=1)}
    lines = build_details({"checkpoint": str(run.path / "best.pt"), "dataset": "synthetic", "split": "test"},
                          ids, [REFS[i] for i in ids], [hyps[i] for i in ids], audio=audio)
    write_details(details_path(run.path / "best.pt", "synthetic", "test"), lines)
    return run


def test_hypothesis_html_colours_each_kind_of_difference_and_escapes_words():
    out = hypothesis_html([{"op": "equal", "ref": ["go"], "hyp": ["go"]},
                           {"op": "substitute", "ref": ["the"], "hyp": ["<b>a</b>"]},
                           {"op": "delete", "ref": ["big"], "hyp": []},
                           {"op": "insert", "ref": [], "hyp": ["today"]}])
    assert out.startswith("go <span class='asr-sub'") and "title='reference: the'" in out
    assert "&lt;b&gt;a&lt;/b&gt;" in out and "<b>a</b>" not in out
    assert "<span class='asr-del'" in out and ">big</span>" in out and "line-through" in out
    assert "<span class='asr-ins'" in out and ">today</span>" in out


def test_panel_lists_worst_first_with_diffs_plays_audio_and_compares_two_runs(small_corpus: Path, tmp_path: Path):
    root = tmp_path / "runs"
    first = write_run_details(small_corpus, root, {"u1": "go to a red house today", "u2": "open the door",
                                                   "u3": "a bat sat hear"})
    panel = ErrorPanel(root)
    panel.refresh()
    assert panel.source.value == str(first.path / "details" / "best-synthetic-test.jsonl")
    table = panel.table.value
    assert table.index("u1") < table.index("u3") < table.index("u2"), "worst CER first"
    assert "title='reference: the'>a</span>" in table and ">big</span>" in table and ">today</span>" in table
    assert "3 utterances" in panel.summary.value
    link = panel.download.value  # the evaluation as CSV, downloadable from the page
    assert "download='best-synthetic-test.csv'" in link and "3 utterances as CSV" in link
    csv_text = base64.b64decode(link.split("base64,")[1].split("'")[0]).decode()
    assert csv_text.splitlines()[0].startswith("id,wer,cer,reference,hypothesis") and len(csv_text.splitlines()) == 4
    assert "cat" in panel.words.value and "bat" in panel.words.value
    assert [v for _, v in panel.pick.options] == ["", "u1", "u3", "u2"]
    assert panel.player.children == (), "no empty player on the page (the browser would fetch an empty clip)"
    panel.pick.value = "u1"
    assert panel.audio.value == (small_corpus / "wavs" / "syn-00001.wav").read_bytes()
    assert panel.player.children == (panel.audio,)

    second = write_run_details(small_corpus, root, {"u1": "go to the big red house", "u2": "open a door",
                                                    "u3": "a cat sat here"})
    panel.refresh()
    assert panel.source.value == str(first.path / "details" / "best-synthetic-test.jsonl"), "the choice is kept"
    panel.other.value = str(second.path / "details" / "best-synthetic-test.jsonl")
    assert "On the 3 utterances both scored" in panel.summary.value and second.id in panel.summary.value
    table = panel.table.value
    assert "<b>A:</b>" in table and "<b>B:</b>" in table and "CER A" in table and "CER B" in table
    row_u2 = table[table.index("<code>u2</code>"):]
    assert "title='reference: the'>a</span>" in row_u2.split("</tr>")[0], "B's substitution is coloured in its line"


def test_an_utterance_whose_audio_is_gone_gets_one_line(small_corpus: Path, tmp_path: Path):
    run = Run.create(tiny_config(small_corpus, tmp_path / "runs"))
    lines = build_details({"dataset": "synthetic", "split": "test"}, ["u1"], [REFS["u1"]], ["go"],
                          audio={"u1": str(tmp_path / "gone.wav")})
    write_details(details_path(run.path / "best.pt", "synthetic", "test"), lines)
    panel = ErrorPanel(tmp_path / "runs")
    panel.refresh()
    panel.pick.value = "u1"
    assert "gone.wav is gone" in panel.message.value and panel.player.children == ()


def test_a_broken_details_file_gets_one_line_in_the_panel(small_corpus: Path, tmp_path: Path):
    run = write_run_details(small_corpus, tmp_path / "runs", {"u1": "go"})
    (run.path / "details" / "best-synthetic-test.jsonl").write_text("garbage\n")
    panel = ErrorPanel(tmp_path / "runs")
    panel.refresh()
    assert "line 1: not JSON" in panel.message.value and panel.table.value == ""


def test_no_details_yet_says_how_to_write_them(tmp_path: Path):
    panel = ErrorPanel(tmp_path / "empty")
    panel.refresh()
    assert "--details" in panel.message.value and panel.source.options == ()


def test_the_panels_do_not_import_torch():
    code = ("import sys, asr_poc.ui.error_panel, asr_poc.ui.data_browser, asr_poc.analysis, asr_poc.corpus_index; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
