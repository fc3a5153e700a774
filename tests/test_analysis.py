"""Error analysis: per-utterance details files, worst-first ordering, confusion counts, two evaluations compared."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import jiwer
import pytest

from asr_poc.analysis import (Confusion, Details, DetailsError, build_details, compare, confusions, csv_path, details_path,
                              list_details, read_details, totals, utterance_details, word_alignment, worst,
                              write_details)

REF, HYP = "go to the big red house", "go to a red house today"


def test_word_alignment_lists_jiwers_chunks_with_their_words():
    assert word_alignment(REF, HYP) == [
        {"op": "equal", "ref": ["go", "to"], "hyp": ["go", "to"]},
        {"op": "substitute", "ref": ["the"], "hyp": ["a"]},
        {"op": "delete", "ref": ["big"], "hyp": []},
        {"op": "equal", "ref": ["red", "house"], "hyp": ["red", "house"]},
        {"op": "insert", "ref": [], "hyp": ["today"]},
    ]
    assert word_alignment("", "hello there") == [{"op": "insert", "ref": [], "hyp": ["hello", "there"]}]
    assert word_alignment("", "") == []


def test_utterance_details_counts_errors_and_rates():
    u = utterance_details("u1", REF, HYP, audio="/a/u1.wav", duration=1.5)
    assert (u["hits"], u["substitutions"], u["deletions"], u["insertions"]) == (4, 1, 1, 1)
    assert u["wer"] == pytest.approx(3 / 6) and u["cer"] == pytest.approx(jiwer.cer(REF, HYP))
    assert u["audio"] == "/a/u1.wav" and u["duration"] == 1.5
    empty = utterance_details("u2", "", "noise")
    assert empty["wer"] is None and empty["cer"] is None and empty["insertions"] == 1


def test_details_file_is_a_summary_line_then_one_line_per_utterance(tmp_path: Path):
    checkpoint = tmp_path / "run-1" / "best.pt"
    path = details_path(checkpoint, "real-check", "test")
    assert path == tmp_path / "run-1" / "details" / "best-real-check-test.jsonl"
    lines = build_details({"checkpoint": str(checkpoint), "dataset": "real-check", "split": "test", "wer": 0.5},
                          ["u1", "u2"], [REF, "hello world"], [HYP, "hello world"], audio={"u1": "/a/u1.wav"},
                          durations={"u1": 1.5, "u2": 0.7})
    write_details(path, lines)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, csv_path(path).name]), \
        "the CSV beside it, and no temporary file left behind"
    table = list(csv.DictReader(csv_path(path).open()))
    assert [r["id"] for r in table] == ["u1", "u2"] and table[0]["reference"] == REF  # worst first
    assert float(table[0]["cer"]) > 0 and table[1]["wer"] == "0.0" and table[1]["audio"] == ""
    assert int(table[0]["deletions"]) >= 1 and table[0]["duration"] == "1.5"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert raw[0]["type"] == "summary" and raw[0]["utterances"] == 2 and raw[0]["dataset"] == "real-check"
    assert [r["id"] for r in raw[1:]] == ["u1", "u2"] and raw[2]["wer"] == 0.0 and raw[2]["audio"] is None
    details = read_details(path)
    assert details.summary["wer"] == 0.5 and details.utterances[0]["alignment"][2] == {"op": "delete",
                                                                                       "ref": ["big"], "hyp": []}
    assert details.label == "best.pt on real-check/test"
    assert list_details(tmp_path / "run-1") == [path] and list_details(tmp_path / "nothing") == []
    with pytest.raises(ValueError, match="as many"):
        build_details({}, ["u1"], [REF, REF], [HYP])


@pytest.mark.parametrize("content, message", [
    ("", "no summary line"),
    ('{"type": "summary"}\nnot json\n', "line 2: not JSON"),
    ('{"type": "summary"}\n{"type": "step", "step": 1}\n', "line 2: neither"),
])
def test_a_bad_details_file_gets_one_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(DetailsError, match=message) as err:
        read_details(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(DetailsError, match="cannot be read"):
        read_details(tmp_path / "missing.jsonl")


def _utts(*rows: tuple[str, str, str]) -> list[dict]:
    return [utterance_details(i, r, h) for i, r, h in rows]


def test_worst_first_by_cer_then_wer_then_id():
    utts = _utts(("a", "one two three", "one two three"),      # perfect
                 ("b", "one two three", "one too three"),      # one letter wrong
                 ("c", "one two three", "one two"),            # a word dropped
                 ("d", "one two three", "one too three"),      # same as b: ties by id
                 ("e", "", "noise"))                            # unscored
    ranked = worst(utts, "cer")
    assert [u["id"] for u in ranked] == ["c", "b", "d", "a"]
    assert [u["cer"] for u in ranked] == sorted((u["cer"] for u in ranked), reverse=True)
    # b, c and d all have WER 1/3: the higher CER (c) goes first, then the id
    assert [u["id"] for u in worst(utts, "wer", limit=3)] == ["c", "b", "d"]
    with pytest.raises(ValueError, match="must be one of"):
        worst(utts, "rtf")


def test_confusions_count_word_and_character_pairs():
    utts = _utts(("a", "the cat sat", "the bat sat"), ("b", "a cat ran", "a bat ran"),
                 ("c", "big red dog", "big dog"), ("d", "go home", "go home now"))
    words = confusions(utts, "word")
    assert words[0] == Confusion("cat", "bat", 2)
    assert set(words[1:]) == {Confusion("red", "", 1), Confusion("", "now", 1)}
    assert [c.kind for c in words] == ["substitution", "insertion", "deletion"], "ties: by reference, then hypothesis"
    assert confusions(utts, "word", include=("substitute",)) == [Confusion("cat", "bat", 2)]
    chars = confusions(utts, "char", limit=1)
    assert chars == [Confusion("c", "b", 2)]
    all_chars = {(c.ref, c.hyp): c.count for c in confusions(utts, "char", limit=None)}
    assert sum(n for (r, h), n in all_chars.items() if h == "") == len("red "), "'red ' dropped (space too)"
    assert sum(n for (r, h), n in all_chars.items() if r == "") == len(" now")
    with pytest.raises(ValueError, match="level"):
        confusions(utts, "phone")


def test_compare_pairs_the_shared_utterances_worst_in_the_first(tmp_path: Path):
    a = Details(tmp_path / "a.jsonl", {"checkpoint": "a/best.pt", "dataset": "s", "split": "test"},
                _utts(("u1", "one two", "one two"), ("u2", "one two", "one"), ("u3", "x y", "x z")))
    b = Details(tmp_path / "b.jsonl", {"checkpoint": "b/best.pt", "dataset": "s", "split": "test"},
                _utts(("u2", "one two", "one two"), ("u1", "one two", "on two"), ("u9", "p", "q")))
    pairs = compare(a, b)
    assert [(x["id"], y["id"]) for x, y in pairs] == [("u2", "u2"), ("u1", "u1")]
    assert pairs[0][1]["cer"] == 0.0 and pairs[1][1]["cer"] > 0
    other = Details(tmp_path / "c.jsonl", {"dataset": "t", "split": "dev"}, _utts(("v1", "a", "b")))
    with pytest.raises(DetailsError, match="share no utterance"):
        compare(a, other)


def test_totals_are_the_corpus_rates_of_the_utterances():
    refs, hyps = ["one two three", "four five", "six"], ["one too three", "four", "six seven"]
    utts = _utts(*((str(i), r, h) for i, (r, h) in enumerate(zip(refs, hyps))))
    t = totals(utts)
    assert t["utterances"] == t["scored"] == 3
    assert t["wer"] == pytest.approx(jiwer.wer(refs, hyps)) and t["cer"] == pytest.approx(jiwer.cer(refs, hyps))


def test_eval_details_from_the_command_line_on_a_tiny_trained_run(small_corpus: Path, tmp_path: Path, capsys):
    from asr_poc.cli import main
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train
    from conftest import tiny_config

    run = Run.create(tiny_config(small_corpus, tmp_path / "runs", "training.max_steps=2"))
    assert train(run)["state"] == "finished"
    code = main(["eval", str(run.path), "--details", "--json", "--device", "cpu", "--split", "test",
                 "--set", f"datasets.synthetic.path={small_corpus}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    path = Path(summary["details"])
    assert path == run.path / "details" / "last-synthetic-test.jsonl", "a run without best.pt is scored on last.pt"
    details = read_details(path)
    metadata = {r[0]: r[2] for r in (line.split("|") for line in (small_corpus / "metadata.csv").read_text().splitlines())}
    test_ids = {r[0] for r in (line.split("|") for line in (small_corpus / "splits.csv").read_text().splitlines())
                if r[1] == "test"}
    assert {u["id"] for u in details.utterances} == test_ids and details.summary["utterances"] == len(test_ids)
    assert details.summary["cer"] == summary["cer"] and details.summary["checkpoint"] == str(run.last_checkpoint)
    for u in details.utterances:
        assert u["reference"] == metadata[u["id"]] and u["audio"] == str(small_corpus / "wavs" / f"{u['id']}.wav")
        assert [w for c in u["alignment"] for w in c["ref"]] == u["reference"].split()
        assert [w for c in u["alignment"] for w in c["hyp"]] == u["hypothesis"].split()
        assert u["cer"] == pytest.approx(jiwer.cer(u["reference"], u["hypothesis"])) and u["duration"] > 0
    assert totals(details.utterances)["cer"] == pytest.approx(summary["cer"])
