"""Open-vocabulary English sentences for the synthetic corpus, sampled from the English 3-gram in the pocketsphinx
wheel (CMU Sphinx, BSD licence; read by `asr_poc.english_trie.read_trie_lm`): 72k words at their real
frequencies, in the word order of news text, instead of the grammar's ~800 words.

A character model trained on the grammar alone learns its few hundred spellings; a person at the microphone says
anything. Sampling follows the back-off model: an explicit trigram with its probability, else (the back-off weight's share,
1 minus the explicit mass) a word of the bigram (then unigram) distribution that had no explicit entry.
Sentences keep only words that transcripts can hold (`is_kept_word`: a-z and ', no lone letters but "a" and "i").
"""
from __future__ import annotations

import random
from functools import lru_cache
from typing import Optional

import numpy as np

from ..english_trie import is_kept_word, pocketsphinx_lm, read_trie_lm

MIN_WORDS, MAX_WORDS = 4, 14  # the grammar's sentence lengths
MAX_TRIES = 200  # sentences drawn per sentence kept (too short, too long or with an unspellable word)


class _Table:
    """N-grams grouped by their context: `rows(key)` -> the slice of `words`/`probs` that follow context `key`."""

    def __init__(self, keys: np.ndarray, words: np.ndarray, log10_probs: np.ndarray):
        order = np.argsort(keys, kind="stable")
        self.keys, self.words = keys[order], words[order]
        self.probs = np.power(10.0, log10_probs[order])

    def rows(self, key: int) -> slice:
        return slice(int(np.searchsorted(self.keys, key, "left")), int(np.searchsorted(self.keys, key, "right")))


@lru_cache(maxsize=1)
def _english_model() -> tuple:
    """The pocketsphinx 3-gram as sampling tables (read once per process, ~1.5 s)."""
    words, grams, probs, _, scale = read_trie_lm(pocketsphinx_lm())
    v = len(words)
    # the trie stores each n-gram from its last word back: column 0 is the predicted word
    bigram_keys = grams[1][:, 1].astype(np.int64)
    trigram_keys = grams[2][:, 2].astype(np.int64) * v + grams[2][:, 1]
    bigrams = _Table(bigram_keys, grams[1][:, 0], probs[1] * scale)
    trigrams = _Table(trigram_keys, grams[2][:, 0], probs[2] * scale)
    unigram_cdf = np.cumsum(np.power(10.0, probs[0] * scale))
    start, end = words.index("<s>"), words.index("</s>")
    unigram_cdf[start:] -= unigram_cdf[start] - (unigram_cdf[start - 1] if start else 0.0)  # never <s>
    return words, bigrams, trigrams, unigram_cdf, start, end


class EnglishSentenceSampler:
    """Seeded English sentences of 4-14 words from the pocketsphinx 3-gram (see the module docstring)."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.words, self.bigrams, self.trigrams, self.unigram_cdf, self.start, self.end = _english_model()
        self.vocabulary = len(self.words)

    def _explicit(self, table: _Table, key: int) -> tuple[np.ndarray, np.ndarray]:
        """The words that follow context `key` explicitly, and their probabilities' running sum."""
        rows = table.rows(key)
        return table.words[rows], np.cumsum(table.probs[rows])

    def _pick(self, cdf: np.ndarray) -> int:
        """An index drawn from a running sum of probabilities."""
        return min(int(np.searchsorted(cdf, self.rng.random() * cdf[-1], "right")), len(cdf) - 1)

    def _unigram(self, exclude: np.ndarray) -> int:
        for _ in range(100):
            word = self._pick(self.unigram_cdf)
            if word != self.start and word not in exclude:
                return word
        return self.end

    def _after(self, previous: int, exclude: np.ndarray) -> int:
        """A word from P(. | previous), not one of `exclude` (explicit trigrams the caller backed off from)."""
        words, cdf = self._explicit(self.bigrams, previous)
        explicit = min(float(cdf[-1]), 1.0) if len(words) else 0.0
        for _ in range(100):
            if len(words) and self.rng.random() < explicit:
                word = int(words[self._pick(cdf)])
            else:
                word = self._unigram(words)
            if word not in exclude:
                return word
        return self.end

    def _next(self, first: Optional[int], second: int) -> int:
        if first is not None:
            words, cdf = self._explicit(self.trigrams, first * self.vocabulary + second)
            if len(words) and self.rng.random() < min(float(cdf[-1]), 1.0):
                return int(words[self._pick(cdf)])
            return self._after(second, words)
        return self._after(second, np.empty(0, dtype=np.int64))

    def _draw(self) -> list[str]:
        first, second, out = None, self.start, []
        while len(out) <= MAX_WORDS:
            word = self._next(first, second)
            if word == self.end:
                break
            out.append(self.words[word])
            first, second = second, word
        return out

    def sentence(self) -> str:
        """One sentence: capitalised, with a full stop, possessives joined to their word ("company's")."""
        for _ in range(MAX_TRIES):
            tokens: list[str] = []
            for token in self._draw():
                if token.startswith("'") and tokens and token != "'":
                    tokens[-1] += token
                else:
                    tokens.append(token)
            if MIN_WORDS <= len(tokens) <= MAX_WORDS and all(is_kept_word(t) for t in tokens):
                text = " ".join(tokens)
                return text[0].upper() + text[1:] + "."
        raise RuntimeError(f"no English sentence of {MIN_WORDS}-{MAX_WORDS} kept words in {MAX_TRIES} draws")
