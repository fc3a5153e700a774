"""Language models for real speech: `lm build --text FILE` and `--source english` (PocketSphinx's English 3-gram),
and `asr-poc eval` / `asr-poc bench` decoding with the config's `decoding` section."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

kenlm = pytest.importorskip("kenlm")
pytest.importorskip("flashlight.lib.text")

from asr_poc.cli import main  # noqa: E402
from asr_poc.decoding.beam import make_decoder  # noqa: E402
from asr_poc.decoding.lm import LMFiles  # noqa: E402
from asr_poc.text import CharTokenizer  # noqa: E402
from test_decoding import emissions  # noqa: E402

ALPHABET = CharTokenizer.from_texts(["abcdefghijklmnopqrstuvwxyz'"])
BOOK = """The robot moved forward ten meters.  Then it turned
left and moved forward again; the robot stopped!

Ten meters is far. Is it far?"""


def greedy(log_probs: torch.Tensor) -> str:
    return ALPHABET.decode_ctc(log_probs[0].argmax(-1).tolist())


# "young" with its "o" heard as "a": greedy writes "yaung", a word no English text has
YAUNG = emissions("he was a young man", {10: {"a": 0.5, "o": 0.4}}, ALPHABET)


def test_text_file_source_splits_sentences_across_lines(tmp_path: Path, capsys):
    book = tmp_path / "book.txt"
    book.write_text(BOOK, encoding="utf-8")
    out = tmp_path / "lm"
    assert main(["lm", "build", "--text", str(book), "--order", "2", "--char-order", "3", "--out", str(out)]) == 0
    assert "5 sentences" in capsys.readouterr().out  # . ; ! . ? end five sentences; wrapped lines join
    files = LMFiles.open(out)
    assert set(files.read_lexicon()) == {"the", "robot", "moved", "forward", "ten", "meters", "then", "it", "turned",
                                         "left", "and", "again", "stopped", "is", "far"}
    model = kenlm.Model(str(files.words_arpa))
    assert model.score("then it turned left") > model.score("left turned it then")
    manifest = json.loads((out / "lm.json").read_text())
    assert manifest["source"] == {"text": [str(book)]} and manifest["sentences"] == 5


def test_text_file_source_errors_are_one_line(tmp_path: Path, capsys):
    assert main(["lm", "build", "--text", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "lm")]) == 1
    err = capsys.readouterr().err.strip()
    assert "missing.txt" in err and "\n" not in err
    (tmp_path / "empty.txt").write_text("  ...  ")
    assert main(["lm", "build", "--text", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "lm")]) == 1
    assert "no text" in capsys.readouterr().err


@pytest.fixture(scope="module")
def english(tmp_path_factory) -> Path:
    """The English LM cut to its 1,000 likeliest words (a few seconds: reading PocketSphinx's binary model)."""
    from asr_poc.decoding.lm import build_english_lm

    folder = tmp_path_factory.mktemp("english")
    build_english_lm(folder, vocabulary=1000, char_order=4)
    return folder


def test_english_source_is_an_english_lm_kenlm_reads(english: Path):
    files = LMFiles.open(english)
    lexicon = files.read_lexicon()
    assert len(lexicon) == 1000 and lexicon["young"] == list("young")
    assert {"the", "of", "go", "forward", "ten", "he", "was", "not", "young", "man", "don't"} <= set(lexicon)
    assert all(w.replace("'", "").isalpha() and w.replace("'", "").islower() and w.isascii() for w in lexicon)
    assert {w for w in lexicon if len(w) == 1} == {"a", "i"}  # the CMU LM's other 24 letters are not words here
    model = kenlm.Model(str(files.words_arpa))
    assert model.order == 3
    assert model.score("he was not a young man") > model.score("man young a not was he") + 5
    # bigrams in reading order (the trie stores them backwards): p(of) p(the | of) >> p(the) p(of | the)
    assert model.score("of the", bos=False, eos=False) > model.score("the of", bos=False, eos=False) + 2
    manifest = json.loads((english / "lm.json").read_text())
    assert manifest["source"]["vocabulary"] == 1000 and manifest["lexicon_words"] == 1000
    assert manifest["ngrams"][0] == 1003 and manifest["ngrams"][2] > 100_000  # + <s> </s> <unk>; trigrams kept
    assert kenlm.Model(str(files.chars_arpa)).order == 4


@pytest.mark.parametrize("lexicon", [True, False])
def test_beam_search_with_the_english_lm_fixes_a_misspelt_word(english: Path, lexicon: bool):
    assert greedy(YAUNG) == "he was a yaung man"
    decoder = make_decoder(ALPHABET, {"method": "beam", "lm_path": str(english), "lexicon": lexicon,
                                      "lm_weight": 1.0})
    assert decoder.decode(YAUNG) == ["he was a young man"]


# --- eval and bench decode with the config's `decoding` section --------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from asr_poc.plugins import get_model_class

    torch.manual_seed(0)
    model = get_model_class("conformer")({"vocab": ALPHABET.vocab, "encoder_dim": 32, "num_heads": 2,
                                          "num_layers": 1, "ffn_dim": 64, "kernel_size": 3})
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    model.save_checkpoint(path)
    return path


def _eval(capsys, checkpoint: Path, corpus: Path, *overrides: str) -> dict:
    args = ["eval", str(checkpoint), "--dataset", "synthetic", "--limit", "3", "--json", "--device", "cpu",
            "--set", f"datasets.synthetic.path={corpus}"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_decodes_with_the_config_decoding_section(tiny_checkpoint, small_corpus, english, capsys):
    plain = _eval(capsys, tiny_checkpoint, small_corpus)
    assert plain["decoding"] == "greedy" and plain["decoding_options"]["method"] == "greedy"
    beam = _eval(capsys, tiny_checkpoint, small_corpus, "decoding.method=beam", f"decoding.lm_path={english}",
                 "decoding.word_score=2")
    assert beam["decoding"] == f"beam 32 + lexicon + LM x0.5 + word score 2 ({english})"
    assert beam["decoding_options"]["lm_path"] == str(english) and beam["utterances"] == 3
    assert beam["cer"] != plain["cer"]  # an untrained model's greedy characters are not lexicon words


def test_bench_decodes_with_the_config_decoding_section(tiny_checkpoint, small_corpus, english):
    from asr_poc.bench import BenchOptions, run_bench
    from asr_poc.bench.report import markdown

    def bench(*overrides: str) -> dict:
        return run_bench(BenchOptions(
            systems=[str(tiny_checkpoint)], overrides=[f"datasets.synthetic.path={small_corpus}", *overrides],
            limit=2, threads=[1], batch_size=1, repeats=1, baseline=False, streaming=False, training=False,
            cuda=False, out=None, progress=False))

    plain = bench()
    assert plain["systems"][0]["decoding_method"] == "greedy"
    assert "- decoding (the config's `decoding` section; streaming stays greedy): greedy" in markdown(plain)
    result = bench("decoding.method=beam", f"decoding.lm_path={english}", "decoding.word_score=2")
    system = result["systems"][0]
    assert system["decoding_method"].startswith("beam 32 + lexicon + LM x0.5")
    assert system["decoding_method"] in markdown(result)
    lexicon = set(LMFiles.open(english).read_lexicon())
    hypotheses = [t["hypothesis"] for t in system["transcripts"]]
    assert all(set(h.split()) <= lexicon for h in hypotheses)
    assert hypotheses != [t["hypothesis"] for t in plain["systems"][0]["transcripts"]]


def test_screens_offer_the_english_lm_once_built(english: Path, tmp_path: Path, monkeypatch):
    import shutil

    from asr_poc.decoding.lm import ENGLISH_LM, decoding_choices

    monkeypatch.setenv("ASR_POC_ROOT", str(tmp_path))
    assert [label for label, _ in decoding_choices({"decoding": {}})] == ["greedy (fastest)"]
    shutil.copytree(english, tmp_path / ENGLISH_LM)
    (label, section), = decoding_choices({"decoding": {"beam_size": 8}})[1:]
    assert "English" in label and section["lm_path"] == str(tmp_path / ENGLISH_LM) and section["beam_size"] == 8
    decoder = make_decoder(ALPHABET, section)
    assert decoder.decode(YAUNG) == ["he was a young man"]
