"""PocketSphinx's US-English 3-gram (`model/en-us/en-us.lm.bin` in the `pocketsphinx` wheel: CMU Sphinx, BSD licence;
72,547 words, 2.05M bigrams, 1.67M trigrams) read with numpy from its binary trie (the layout of `lm_trie.c`: 16-bit
quantised bigram and trigram scores; PocketSphinx 5.1.1's own ARPA writer crashes on this model).

Two users, on two sides of the layers: `decoding.english` writes it as an ARPA LM for beam search, and
`datasets.english_sentences` samples open-vocabulary sentences from it for the synthetic corpus.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np


class EnglishLMError(ValueError):
    """The English source cannot be read (PocketSphinx missing or its model not where expected)."""


def pocketsphinx_lm() -> Path:
    """The binary 3-gram in the installed pocketsphinx wheel."""
    try:
        from pocketsphinx import get_model_path
    except ImportError:
        raise EnglishLMError("the English LM comes from the pocketsphinx package: pip install pocketsphinx") from None
    path = Path(get_model_path()) / "en-us" / "en-us.lm.bin"
    if not path.is_file():
        raise EnglishLMError(f"PocketSphinx's English LM not found at {path}")
    return path


TRIE_HEADER = b"Trie Language Model"
QUANT_BITS = 16  # PocketSphinx's trie: 16-bit probability and back-off codes, 65,536 bins each


def _required_bits(max_value: int) -> int:
    return int(max_value).bit_length()


def _bit_fields(mem: np.ndarray, start: int, count: int, total_bits: int, offset: int, bits: int) -> np.ndarray:
    """Field `offset`..`offset + bits` of `count` records of `total_bits` each, packed little-endian from byte
    `start` of `mem` (PocketSphinx's `bitarr_read_int57`, vectorised)."""
    at = np.arange(count, dtype=np.int64) * total_bits + offset
    byte = start + (at >> 3)
    window = mem[byte[:, None] + np.arange(8)]  # the 8 bytes from each field's first byte
    value = np.ascontiguousarray(window).view("<u8")[:, 0]
    return ((value >> (at & 7).astype(np.uint64)) & np.uint64((1 << bits) - 1)).astype(np.int64)


def read_trie_lm(path: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[np.ndarray], float]:
    """A PocketSphinx binary trie 3-gram (`lm_trie.c`, `ngram_model_trie.c`) read with numpy.

    Returns the words, per order the word ids of each n-gram (n columns), its log probability and back-off (in
    PocketSphinx's log units: times `scale` is log10), and `scale`. Orders other than 3 are refused.
    """
    mem = np.fromfile(path, dtype=np.uint8)
    if bytes(mem[: len(TRIE_HEADER)]) != TRIE_HEADER:
        raise EnglishLMError(f"{path}: not a PocketSphinx trie language model")
    pos = len(TRIE_HEADER)
    order = int(mem[pos])
    if order != 3:
        raise EnglishLMError(f"{path}: a {order}-gram; only 3-grams are read")
    counts = np.frombuffer(mem[pos + 1 : pos + 1 + 4 * order].tobytes(), "<u4").astype(np.int64)
    pos += 1 + 4 * order + 4  # the counts, then an unused int32 (once the quantisation type)
    bins = 1 << QUANT_BITS
    tables = np.frombuffer(mem[pos : pos + 3 * bins * 4].tobytes(), "<f4")
    bigram_probs, bigram_backoffs, trigram_probs = tables[:bins], tables[bins : 2 * bins], tables[2 * bins :]
    pos += 3 * bins * 4
    vocabulary = int(counts[0])
    unigrams = np.frombuffer(mem[pos : pos + 12 * (vocabulary + 1)].tobytes(),
                             dtype=[("prob", "<f4"), ("bo", "<f4"), ("next", "<i4")])
    pos += 12 * (vocabulary + 1)
    word_bits = _required_bits(vocabulary)
    middle_bits = word_bits + 32 + _required_bits(int(counts[2]))
    middle_size = ((1 + int(counts[1])) * middle_bits + 7) // 8 + 8
    longest_bits = word_bits + QUANT_BITS
    longest_size = ((1 + int(counts[2])) * longest_bits + 7) // 8 + 8
    middle_start, longest_start, words_start = pos, pos + middle_size, pos + middle_size + longest_size
    n_words = int(np.frombuffer(mem[words_start : words_start + 4].tobytes(), "<i4")[0])
    words = bytes(mem[words_start + 4 : words_start + 4 + n_words]).decode("utf-8", "replace").split("\0")[:vocabulary]
    next_bits = _required_bits(int(counts[2]))

    n_bi = int(unigrams["next"][vocabulary])  # the trie's own count (the header's may be larger)
    bi_word = _bit_fields(mem, middle_start, n_bi, middle_bits, 0, word_bits)
    bi_quant = _bit_fields(mem, middle_start, n_bi, middle_bits, word_bits, 32)
    bi_next = _bit_fields(mem, middle_start, n_bi + 1, middle_bits, word_bits + 32, next_bits)
    bi_first = np.repeat(np.arange(vocabulary), np.diff(unigrams["next"].astype(np.int64)))
    n_tri = int(bi_next[n_bi])
    tri_word = _bit_fields(mem, longest_start, n_tri, longest_bits, 0, word_bits)
    tri_quant = _bit_fields(mem, longest_start, n_tri, longest_bits, word_bits, QUANT_BITS)
    tri_context = np.repeat(np.arange(n_bi), np.diff(bi_next))
    grams = [np.arange(vocabulary)[:, None], np.stack([bi_first, bi_word], 1),
             np.stack([bi_first[tri_context], bi_word[tri_context], tri_word], 1)]
    probs = [unigrams["prob"][:vocabulary].astype(np.float64), bigram_probs[bi_quant >> QUANT_BITS].astype(np.float64),
             trigram_probs[tri_quant].astype(np.float64)]
    backoffs = [unigrams["bo"][:vocabulary].astype(np.float64),
                bigram_backoffs[bi_quant & (bins - 1)].astype(np.float64), np.zeros(n_tri)]
    return words, grams, probs, backoffs, math.log10(LOG_BASE)


LOG_BASE = 1.0001  # PocketSphinx's default log base, in which the model's scores are stored


KEPT_WORD = re.compile(r"[a-z']*[a-z][a-z']*")
SINGLE_LETTER_WORDS = {"a", "i"}  # the CMU LM has all 26 letters as words (spelt-out acronyms); a decoder that
# hears badly uses them to spell what it cannot hear ("e s l i s d a s"), so only the two real one-letter words
# stay (the lexicons compared: benchmarks/README.md, "An English language model for real speech")


def is_kept_word(word: str) -> bool:
    """A word the transcripts can contain: lower-case a-z and ' only, a letter at least (what `normalize_text` keeps
    by default; `brand-new` or `a.` would be split or changed), and no single letter but "a" and "i"."""
    return KEPT_WORD.fullmatch(word) is not None and (len(word) > 1 or word in SINGLE_LETTER_WORDS)
