"""Text normalisation (in one place) and the character CTC tokenizer saved inside every checkpoint."""
from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

BLANK = "<pad>"  # CTC blank; id 0
UNK = "<unk>"
WORD_DELIMITER = "|"

_ALLOWED = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case ASCII letters, apostrophes and single spaces: what every model is trained and scored on."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    text = "".join("" if unicodedata.category(c).startswith("M") else c for c in text)
    text = _ALLOWED.sub(" ", text.lower())
    return _SPACES.sub(" ", text).strip()


class CharTokenizer:
    """Characters <-> ids for CTC, backed by transformers' `Wav2Vec2CTCTokenizer`.

    The vocabulary is a plain dict (saved in checkpoints); id 0 is the CTC blank, spaces are `|`.
    """

    def __init__(self, vocab: dict[str, int]):
        if vocab.get(BLANK) != 0:
            raise ValueError(f"vocabulary must map {BLANK!r} (the CTC blank) to id 0")
        self.vocab = dict(vocab)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "CharTokenizer":
        """Build a vocabulary from the characters of the (normalised) training transcripts."""
        chars = sorted({c for t in texts for c in normalize_text(t)} - {" "})
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

    def encode(self, text: str) -> list[int]:
        """Normalised text -> ids (no blanks)."""
        return self._hf(normalize_text(text)).input_ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids with CTC repeats and blanks already removed -> text."""
        return self._hf.decode(list(ids), group_tokens=False, skip_special_tokens=True).strip()

    def decode_ctc(self, ids: Sequence[int]) -> str:
        """Raw frame-level argmax ids -> text: merge repeats, then drop blanks (in that order)."""
        collapsed = [i for n, i in enumerate(ids) if i != self.blank_id and (n == 0 or ids[n - 1] != i)]
        return self.decode(collapsed)
