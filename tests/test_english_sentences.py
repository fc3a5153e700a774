"""Open-vocabulary sentences for the synthetic corpus, sampled from PocketSphinx's English 3-gram."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from asr_poc.datasets.english_sentences import MAX_WORDS, MIN_WORDS, EnglishSentenceSampler
from asr_poc.datasets.synthetic import SentenceGenerator, generate_corpus
from asr_poc.english_trie import is_kept_word
from asr_poc.text import normalize_text


def _rows(path: Path) -> list[list[str]]:
    return [line.split("|") for line in path.read_text().splitlines()]


def test_sentences_are_seeded_spellable_and_of_grammar_length() -> None:
    seeded = EnglishSentenceSampler(5)
    first = [seeded.sentence() for _ in range(3)]
    sampler = EnglishSentenceSampler(5)
    assert [sampler.sentence() for _ in range(3)] == first
    sentences = first + [sampler.sentence() for _ in range(300)]
    for text in sentences:
        words = normalize_text(text).split()
        assert MIN_WORDS <= len(words) <= MAX_WORDS, text
        assert all(is_kept_word(w) for w in words), text
        assert text[0].isupper() and text.endswith(".")
    assert EnglishSentenceSampler(6).sentence() != first[0]


def test_vocabulary_is_open_and_english_in_its_frequencies() -> None:
    """The point of the source: many more words than the grammar, the common ones commonest, and word order that
    follows the 3-gram (bigrams like "of the" recur)."""
    sampler = EnglishSentenceSampler(0)
    english = [normalize_text(sampler.sentence()) for _ in range(400)]
    grammar = SentenceGenerator(0)
    grammar_words = {w for _ in range(400) for w in normalize_text(grammar.sentence()).split()}
    words = Counter(w for s in english for w in s.split())
    assert len(words) > 1.5 * len(grammar_words), (len(words), len(grammar_words))  # ~1,050 against ~610
    assert len(set(words) - grammar_words) > 700
    assert {"the", "and", "to", "of", "a"} <= {w for w, _ in words.most_common(15)}
    bigrams = Counter(pair for s in english for pair in zip(s.split(), s.split()[1:]))
    assert bigrams[("of", "the")] >= 3


def test_corpus_takes_a_share_of_english_without_moving_voices_or_splits(tmp_path: Path) -> None:
    grammar = generate_corpus(tmp_path / "grammar", utterances=20, seed=2, progress=False, engines=["espeak"],
                              english_share=0.0)
    mixed = generate_corpus(tmp_path / "mixed", utterances=20, seed=2, progress=False, engines=["espeak"],
                            english_share=0.5)
    assert (grammar / "voices.csv").read_text() == (mixed / "voices.csv").read_text()
    assert (grammar / "splits.csv").read_text() == (mixed / "splits.csv").read_text()
    grammar_texts = {text for _, text, _ in _rows(grammar / "metadata.csv")}
    english = [text for _, text, _ in _rows(mixed / "metadata.csv") if text not in grammar_texts]
    assert 4 <= len(english) <= 16  # about half of 20
    with pytest.raises(ValueError, match="english_share"):
        generate_corpus(tmp_path / "bad", utterances=5, english_share=1.5, progress=False, engines=["espeak"])
