"""Text normalization (in one place) and the character CTC tokenizer saved inside every checkpoint.

What a transcript keeps is set per data set (`datasets.<name>.text`, a `TextConfig`): `script: ascii` (the default,
English as before) folds accents and keeps a-z; `script: any` keeps the letters of every script (Unicode categories
L and M, so Devanagari's vowel signs stay with their letters); `keep: letters+digits` also keeps decimal digits
(category Nd). The model's vocabulary is the set of characters of its training texts, saved in the checkpoint.
"""
from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from functools import cached_property
from pathlib import Path
from typing import Iterable, Literal, Sequence, Union

from pydantic import BaseModel, ConfigDict

BLANK = "<pad>"  # CTC blank; id 0
UNK = "<unk>"
WORD_DELIMITER = "|"
APOSTROPHES = "\u2019"  # the typographic apostrophe is written as '

_SPACES = re.compile(r"\s+")


class TextConfig(BaseModel):
    """`datasets.<name>.text`: what the normalizer keeps of a transcript."""

    model_config = ConfigDict(extra="forbid")
    lowercase: bool = True
    keep: Literal["letters", "letters+digits"] = "letters"  # apostrophes within words are kept with either
    script: Literal["ascii", "any"] = "ascii"  # ascii: fold accents, keep a-z only; any: letters of every script


TextSettings = Union[TextConfig, dict, None]


def text_config(settings: TextSettings = None) -> TextConfig:
    """A `TextConfig` from a config dict (or None: the default, English in ASCII)."""
    return settings if isinstance(settings, TextConfig) else TextConfig.model_validate(settings or {})


def _kept(char: str, category: str, cfg: TextConfig) -> bool:
    if char == "'":
        return True
    if cfg.keep == "letters+digits" and category == "Nd":
        return cfg.script == "any" or "0" <= char <= "9"
    if cfg.script == "ascii":
        return "a" <= char.lower() <= "z"
    return category[0] in "LM"


def normalize_text(text: str, settings: TextSettings = None) -> str:
    """The transcript as models are trained and scored on it: kept characters (see `TextConfig`) and single
    spaces; anything else (punctuation, symbols) becomes a space. The default gives lower-case a-z, ' and spaces."""
    cfg = text_config(settings)
    for mark in APOSTROPHES:
        text = text.replace(mark, "'")
    if cfg.script == "ascii":  # é -> e: decompose, then drop the combining marks
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.category(c).startswith("M"))
    else:
        text = unicodedata.normalize("NFC", text)
    if cfg.lowercase:
        text = text.lower()
    out = []
    for c in text:
        category = unicodedata.category(c)
        keep = _kept(c, category, cfg) and not (category[0] == "M" and (not out or out[-1] == " "))
        out.append(c if keep else " ")  # a mark is kept only after a kept character
    return _SPACES.sub(" ", "".join(out)).strip()


def vocabulary_text_config(symbols: Iterable[str]) -> TextConfig:
    """The normalization a vocabulary implies: ASCII if all its characters are (every checkpoint made before
    scripts were configurable), digits if it has some, lower case unless it has upper-case letters."""
    chars = [s for s in symbols if len(s) == 1]
    return TextConfig(lowercase=not any(c.isupper() for c in chars),
                      keep="letters+digits" if any(unicodedata.category(c) == "Nd" for c in chars) else "letters",
                      script="ascii" if all(c.isascii() for c in chars) else "any")


class CharTokenizer:
    """Characters <-> ids for CTC, backed by transformers' `Wav2Vec2CTCTokenizer`.

    The vocabulary is a plain dict (saved in checkpoints); id 0 is the CTC blank, spaces are `|`.
    """

    def __init__(self, vocab: dict[str, int]):
        if vocab.get(BLANK) != 0:
            raise ValueError(f"vocabulary must map {BLANK!r} (the CTC blank) to id 0")
        self.vocab = dict(vocab)

    @classmethod
    def from_texts(cls, texts: Iterable[str], settings: TextSettings = None) -> "CharTokenizer":
        """A vocabulary of the characters of the training transcripts: normalized with `settings` when given, else
        taken as they are (`BaseASRDataset.texts()` are normalized with the data set's `text` settings already)."""
        texts = (normalize_text(t, settings) for t in texts) if settings is not None else texts
        chars = sorted({c for t in texts for c in t if not c.isspace()})
        symbols = [BLANK, UNK, WORD_DELIMITER] + chars
        return cls({s: i for i, s in enumerate(symbols)})

    @cached_property
    def _hf(self):
        from transformers import Wav2Vec2CTCTokenizer

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vocab.json"
            path.write_text(json.dumps(self.vocab))
            return Wav2Vec2CTCTokenizer(
                str(path), unk_token=UNK, pad_token=BLANK, word_delimiter_token=WORD_DELIMITER,
                do_lower_case=False, bos_token=None, eos_token=None,
            )

    @property
    def blank_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.vocab)

    @cached_property
    def text_config(self) -> TextConfig:
        """How text is normalized for this vocabulary (see `vocabulary_text_config`)."""
        return vocabulary_text_config(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Text -> ids (no blanks), normalized as the vocabulary implies; characters outside it become <unk>."""
        return self._hf(normalize_text(text, self.text_config)).input_ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids with CTC repeats and blanks already removed -> text."""
        text = self._hf.decode(list(ids), group_tokens=False, skip_special_tokens=True)
        return " ".join(text.split())  # two word boundaries with a blank between them are one space

    def decode_ctc(self, ids: Sequence[int]) -> str:
        """Raw frame-level argmax ids -> text: merge repeats, then drop blanks (in that order)."""
        collapsed = [i for n, i in enumerate(ids) if i != self.blank_id and (n == 0 or ids[n - 1] != i)]
        return self.decode(collapsed)

    def decode_ctc_batch(self, logits, lengths) -> list[str]:
        """Greedy CTC over a padded batch: logits (B, frames, vocab) and frame lengths (B,) tensors -> texts."""
        best = logits.argmax(-1).cpu()
        return [self.decode_ctc(best[i, : int(n)].tolist()) for i, n in enumerate(lengths.cpu())]

    def extend_ctc(self, ids: Sequence[int], tokens: list[int], last: int) -> int:
        """Streaming greedy CTC: append to `tokens` what the frame ids `ids` add after a frame whose id was `last`
        (repeats merge across calls, blanks drop); returns the new last id."""
        for i in ids:
            if i != last and i != self.blank_id:
                tokens.append(i)
            last = i
        return last
