"""An English word language model that builds offline: `asr-poc lm build --source english`.

The source is the US-English 3-gram that ships inside the `pocketsphinx` wheel (already a dependency: the bench's
baseline), `model/en-us/en-us.lm.bin` from CMU Sphinx, under CMU's BSD-style licence (the wheel's LICENSE): 72,547
words, 2.05M bigrams, 1.67M trigrams. It is read with numpy from PocketSphinx's binary trie (the layout of its
`lm_trie.c`: 16-bit quantised bigram and trigram scores; PocketSphinx 5.1.1's own ARPA writer crashes on this
model), written as ARPA, and cut to the `vocabulary` likeliest words that the transcripts' normalization keeps
(lower-case a-z and '): n-grams with another word are dropped, the rest keep their probabilities and back-off
weights (the mass of the dropped words is simply gone: scores shift, the order of two kept sentences does not).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import numpy as np

from ..english_trie import (SINGLE_LETTER_WORDS, EnglishLMError, is_kept_word, pocketsphinx_lm,  # noqa: F401
                            read_trie_lm)
from ..io import atomic_write_text

DEFAULT_VOCABULARY: Optional[int] = None  # all 72,242 words kept (`is_kept_word`)
SOURCE_NAME = "pocketsphinx en-us 3-gram (CMU Sphinx, BSD licence)"


def english_word_model(out: Path, vocabulary: Optional[int] = DEFAULT_VOCABULARY) -> list[tuple[str, float]]:
    """Write PocketSphinx's English 3-gram as ARPA to `out`, keeping the `vocabulary` likeliest words that transcripts
    can contain (None: all of them) and every n-gram made only of kept words (and <s>, </s>); return the kept words
    with their unigram log10 probabilities, likeliest first."""
    words, grams, probs, backoffs, scale = read_trie_lm(pocketsphinx_lm())
    unigram = probs[0] * scale
    candidates = [i for i, w in enumerate(words) if is_kept_word(w)]
    candidates.sort(key=lambda i: -unigram[i])
    ranked = candidates[:vocabulary] if vocabulary else candidates
    keep = np.zeros(len(words), dtype=bool)
    keep[ranked] = True
    names = np.array(words, dtype=object)
    for special in ("<s>", "</s>"):
        keep[words.index(special)] = True
    sections, counts = [], []
    for n, (ids, prob, backoff) in enumerate(zip(grams, probs, backoffs), start=1):
        ids = ids[:, ::-1]  # the trie stores each n-gram from its last word back; ARPA lists it in reading order
        chosen = keep[ids].all(axis=1)
        rows = ids[chosen]
        text = names[rows[:, 0]]
        for k in range(1, n):
            text = text + " " + names[rows[:, k]]  # element-wise on object arrays: faster than a join per row
        p, b = prob[chosen] * scale, backoff[chosen] * scale
        if n < len(grams):
            lines = [f"{x:.6f}\t{t}\t{y:.6f}" for x, t, y in zip(p.tolist(), text, b.tolist())]
        else:
            lines = [f"{x:.6f}\t{t}" for x, t in zip(p.tolist(), text)]
        if n == 1:  # KenLM wants <unk>: the rarest kept word's probability
            lines.append(f"{float(unigram[ranked[-1]]):.6f}\t<unk>\t0.000000")
        counts.append(len(lines))
        sections.append(f"\\{n}-grams:\n" + "\n".join(lines))
    header = "\\data\\\n" + "".join(f"ngram {n}={c}\n" for n, c in enumerate(counts, start=1))
    atomic_write_text(out, header + "\n" + "\n\n".join(sections) + "\n\n\\end\\\n")
    return [(words[i], float(unigram[i])) for i in ranked]


def sample_sentences(words: list[tuple[str, float]], sentences: int = 4000, length: int = 8,
                     seed: int = 0) -> list[str]:
    """Pseudo-sentences of words drawn by their unigram probability: text for the character LM (spelling and word
    boundaries at English word frequencies; the word LM carries the word order)."""
    rng = random.Random(seed)
    vocabulary = [w for w, _ in words]
    weights = [10 ** p for _, p in words]
    return [" ".join(rng.choices(vocabulary, weights, k=length)) for _ in range(sentences)]

