"""`asr-poc lm build`: the files beam search reads, built from a data set's training texts.

A language-model folder holds
    words.arpa     word n-gram model (interpolated Kneser-Ney, `ngram.py`) for the lexicon decoder
    chars.arpa     character n-gram model over the model's tokens (`|` between words) for lexicon-free decoding
    lexicon.txt    every word of the texts spelled in characters: `cat c a t` (the decoder may only output these)
    hotwords.txt   words to boost, `word weight` a line (also accepted when not in the texts: they join the lexicon)
    lm.json        what was built from what: data set, split, orders, counts, discounts
"""
from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ..io import atomic_write_json, atomic_write_text
from ..paths import resolve_path
from ..plugins import load_dataset
from ..text import WORD_DELIMITER, normalize_text
from .english import DEFAULT_VOCABULARY, SOURCE_NAME, english_word_model, sample_sentences
from .ngram import estimate, write_arpa

WORDS_ARPA, CHARS_ARPA, LEXICON, HOTWORDS, MANIFEST = "words.arpa", "chars.arpa", "lexicon.txt", "hotwords.txt", "lm.json"
DEFAULT_HOTWORD_WEIGHT = 5.0  # log10 units added to a hot word's LM score (times decoding.lm_weight); a word
# the texts never had costs about 3 (its <unk> probability and the back-off after it) in a small LM


class LMError(ValueError):
    """A language-model folder that cannot be used; `str()` is one line saying why."""


@dataclass(frozen=True)
class LMFiles:
    """The paths of one language-model folder."""

    folder: Path

    @property
    def words_arpa(self) -> Path:
        return self.folder / WORDS_ARPA

    @property
    def chars_arpa(self) -> Path:
        return self.folder / CHARS_ARPA

    @property
    def lexicon(self) -> Path:
        return self.folder / LEXICON

    @property
    def hotwords(self) -> Path:
        return self.folder / HOTWORDS

    @classmethod
    def open(cls, folder: str | os.PathLike) -> "LMFiles":
        """The folder written by `build_lm`; an error naming the missing file (and how to build it) otherwise."""
        files = cls(Path(folder))
        for path in (files.words_arpa, files.chars_arpa, files.lexicon):
            if not path.is_file():
                raise LMError(f"language model folder {folder}: {path.name} missing (build it with: asr-poc lm build "
                              f"--dataset NAME --out {folder})")
        return files

    def read_lexicon(self) -> dict[str, list[str]]:
        """word -> its spelling (characters)."""
        entries = {}
        for line in self.lexicon.read_text(encoding="utf-8").splitlines():
            word, *spelling = line.split()
            entries[word] = spelling
        return entries

    def read_hotwords(self) -> dict[str, float]:
        """Hot words given at build time (empty if none)."""
        return read_hotwords(self.hotwords) if self.hotwords.is_file() else {}


def spell(word: str) -> list[str]:
    """A word as the character tokens of the CTC vocabulary (spaces are `|`, never inside a word)."""
    return list(word)


def char_units(sentence: str) -> list[str]:
    """A normalized sentence as the units of the character LM: its characters, `|` for each space."""
    return [WORD_DELIMITER if c == " " else c for c in sentence]


def parse_hotwords(items: Iterable[str], default_weight: float = DEFAULT_HOTWORD_WEIGHT) -> dict[str, float]:
    """`["acme", "zurich:3"]` -> {"acme": 2.0, "zurich": 3.0}; words are normalized like transcripts."""
    out: dict[str, float] = {}
    for item in items:
        word, sep, weight = str(item).rpartition(":") if ":" in str(item) else (str(item), "", "")
        try:
            value = float(weight) if sep else default_weight
        except ValueError:
            raise LMError(f"hot word {item!r}: the weight after ':' must be a number") from None
        for w in normalize_text(word).split():
            out[w] = value
    return out


def read_hotwords(path: Path) -> dict[str, float]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            word, *weight = line.split()
            out[word] = float(weight[0]) if weight else DEFAULT_HOTWORD_WEIGHT
    return out


def build_lm(texts: Iterable[str], out: str | os.PathLike, order: int = 3, char_order: int = 6,
             hotwords: Optional[dict[str, float]] = None, source: Optional[dict] = None) -> dict:
    """Estimate both n-gram models from `texts`, write the folder (each file atomically); return the manifest."""
    sentences = [s for s in (normalize_text(t) for t in texts) if s]
    if not sentences:
        raise LMError("no text to build a language model from (is the split empty?)")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    words = estimate([s.split() for s in sentences], order=order)
    chars = estimate([char_units(s) for s in sentences], order=char_order)
    write_arpa(words, folder / WORDS_ARPA)
    write_arpa(chars, folder / CHARS_ARPA)
    counts = Counter(w for s in sentences for w in s.split())
    return _write_lexicon_and_manifest(folder, set(counts), hotwords, {
        "source": source or {}, "sentences": len(sentences), "running_words": sum(counts.values()), "order": order,
        "char_order": char_order, "smoothing": "interpolated Kneser-Ney", "ngrams": [len(p) for p in words.prob],
        "char_ngrams": [len(p) for p in chars.prob], "discounts": words.discounts})


def build_english_lm(out: str | os.PathLike, vocabulary: Optional[int] = DEFAULT_VOCABULARY, char_order: int = 6,
                     hotwords: Optional[dict[str, float]] = None) -> dict:
    """The folder for English speech (`--source english`): PocketSphinx's English 3-gram cut to `vocabulary` words
    (`english.py`), its words as the lexicon, and a character LM over text drawn at those words' frequencies."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    words = english_word_model(folder / WORDS_ARPA, vocabulary)
    chars = estimate([char_units(s) for s in sample_sentences(words)], order=char_order)
    write_arpa(chars, folder / CHARS_ARPA)
    orders = arpa_counts(folder / WORDS_ARPA)
    return _write_lexicon_and_manifest(folder, {w for w, _ in words}, hotwords, {
        "source": {"english": SOURCE_NAME, "vocabulary": vocabulary}, "order": len(orders), "char_order": char_order,
        "smoothing": "as shipped (CMU Sphinx); cut to the vocabulary", "ngrams": orders,
        "char_ngrams": [len(p) for p in chars.prob]})


def _write_lexicon_and_manifest(folder: Path, words: set[str], hotwords: Optional[dict[str, float]],
                                about: dict) -> dict:
    """lexicon.txt (the words and the hot words, spelled), hotwords.txt and lm.json; return the manifest."""
    hotwords = dict(hotwords or {})
    lexicon = sorted(words | set(hotwords))
    atomic_write_text(folder / LEXICON, "".join(f"{w} {' '.join(spell(w))}\n" for w in lexicon))
    atomic_write_text(folder / HOTWORDS, "".join(f"{w} {v:g}\n" for w, v in sorted(hotwords.items())))
    manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **about, "lexicon_words": len(lexicon),
                "hotwords": hotwords}
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def arpa_counts(path: str | os.PathLike) -> list[int]:
    """The n-gram counts of an ARPA file's header (`ngram N=count` lines)."""
    counts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("ngram "):
                counts.append(int(line.split("=")[1]))
            elif line.startswith("\\1-grams"):
                break
    return counts


def text_file_sentences(path: str | os.PathLike) -> list[str]:
    """Sentences of a plain-text file (UTF-8): split at . ! ? ; and blank lines, so a book's wrapped lines join up."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise LMError(f"--text {path}: {err.strerror or err}") from None
    return [s for s in re.split(r"[.!?;:]+|\n\s*\n", text) if s.strip()]


def dataset_texts(config: dict, dataset: str, split: str = "train") -> list[str]:
    """The transcripts of a configured data set's split (no audio is read)."""
    data = load_dataset(dataset, config["datasets"][dataset], split)
    return [item.text for item in data.items]


ENGLISH_LM = "data/lm/english"  # where `make run` writes `lm build --source english` (git-ignored, beside the data)
ENGLISH_LM_WEIGHT, ENGLISH_WORD_SCORE = 2.0, 0.0  # tuned on half of real-check (benchmarks/decoding_sweep.py)


def decoding_choices(config: dict) -> list[tuple[str, dict]]:
    """(label, `decoding` section) pairs a screen offers: greedy, beam search when an LM folder exists (the
    config's `decoding.lm_path`, else `lm/` under the project root), and beam search with the English LM when
    `data/lm/english` exists."""
    section = dict(config.get("decoding") or {})
    choices = [("greedy (fastest)", {**section, "method": "greedy"})]
    folder = resolve_path(section["lm_path"]) if section.get("lm_path") else resolve_path("lm")
    if _is_lm_folder(folder):
        beam = {**section, "method": "beam", "lm_path": str(folder)}
        choices += [(f"beam search + word LM ({folder.name}/)", {**beam, "lexicon": True}),
                    (f"beam search + character LM ({folder.name}/)", {**beam, "lexicon": False, "hotwords": []})]
    english = resolve_path(ENGLISH_LM)
    if english != folder and _is_lm_folder(english):
        choices.append(("beam search + English word LM (real speech)",
                        {**section, "method": "beam", "lm_path": str(english), "lexicon": True,
                         "lm_weight": ENGLISH_LM_WEIGHT, "word_score": ENGLISH_WORD_SCORE}))
    return choices


def _is_lm_folder(folder: Path) -> bool:
    return (folder / WORDS_ARPA).is_file() and (folder / LEXICON).is_file()
