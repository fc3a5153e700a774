"""Text normalization (in one place) and the CTC tokenizers saved inside every checkpoint: characters (the default)
or sub-word pieces (`SubwordTokenizer`, sentencepiece BPE, `training.subword_vocab_size`); `make_tokenizer(vocab)`
rebuilds either from a checkpoint's vocabulary.

What a transcript keeps is set per data set (`datasets.<name>.text`, a `TextConfig`): `script: ascii` (the default,
English as before) folds accents and keeps a-z; `script: any` keeps the letters of every script (Unicode categories
L and M, so Devanagari's vowel signs stay with their letters); `keep: letters+digits` also keeps decimal digits
(category Nd). The model's vocabulary is the set of characters of its training texts, saved in the checkpoint.
"""
from __future__ import annotations

import base64
import json
import re
import tempfile
import unicodedata
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence, Union

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
        if SUBWORD_MODEL_KEY in vocab:
            raise ValueError("this vocabulary is a sub-word (BPE) model's: build its tokenizer with "
                             "asr_poc.text.make_tokenizer")
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


SUBWORD_MODEL_KEY = "<sentencepiece>"  # in a sub-word vocabulary: the serialized sentencepiece model (base64)
SUBWORD_MARK = "\u2581"  # sentencepiece's word-start mark in its pieces


class SubwordTokenizer:
    """Sub-word pieces (sentencepiece BPE) <-> ids for a CTC head, with `CharTokenizer`'s interface.

    Id 0 is the CTC blank, id 1 `<unk>`, then sentencepiece's pieces (piece id + 1). The vocabulary dict maps every
    piece to its id and also holds the serialized sentencepiece model, base64, under `SUBWORD_MODEL_KEY`: a
    checkpoint's vocabulary alone rebuilds the tokenizer (`make_tokenizer`). Beam search with a character or word LM
    does not read it (`asr_poc.decoding.beam` refuses); greedy decoding does.
    """

    subword = True

    def __init__(self, vocab: dict[str, Any]):
        if not isinstance(vocab.get(SUBWORD_MODEL_KEY), str):
            raise ValueError(f"a sub-word vocabulary holds its sentencepiece model under {SUBWORD_MODEL_KEY!r}")
        if vocab.get(BLANK) != 0:
            raise ValueError(f"vocabulary must map {BLANK!r} (the CTC blank) to id 0")
        self.vocab = dict(vocab)
        sp = self._sp
        if {p: i for p, i in self.vocab.items() if p not in (BLANK, SUBWORD_MODEL_KEY)} != {
                sp.id_to_piece(i): i + 1 for i in range(sp.get_piece_size())}:
            raise ValueError("a sub-word vocabulary's pieces must be its sentencepiece model's, shifted by one")

    @classmethod
    def from_texts(cls, texts: Iterable[str], settings: TextSettings = None,
                   vocab_size: int = 256) -> "SubwordTokenizer":
        """A BPE model trained (in memory) on the training transcripts, normalized with `settings` when given
        (`BaseASRDataset.texts()` are normalized already). `vocab_size` is an upper bound: a small corpus that has
        fewer merges gets fewer pieces."""
        import io

        import sentencepiece as spm

        texts = [normalize_text(t, settings) if settings is not None else " ".join(t.split()) for t in texts]
        texts = [t for t in texts if t]
        if not texts:
            raise ValueError("a sub-word vocabulary needs some non-empty training texts")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, model_type="bpe", vocab_size=int(vocab_size),
            hard_vocab_limit=False, character_coverage=1.0, normalization_rule_name="identity",
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1, minloglevel=2,
            max_sentence_length=1 << 16)
        return cls.from_model(model.getvalue())

    @classmethod
    def from_model(cls, model: bytes) -> "SubwordTokenizer":
        """The tokenizer of a serialized sentencepiece model (unk id 0, no bos/eos/pad)."""
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_proto=model)
        if sp.unk_id() != 0 or sp.bos_id() >= 0 or sp.eos_id() >= 0 or sp.pad_id() >= 0:
            raise ValueError("a CTC sub-word model needs unk id 0 and no bos, eos or pad pieces")
        vocab: dict[str, Any] = {BLANK: 0, **{sp.id_to_piece(i): i + 1 for i in range(sp.get_piece_size())}}
        vocab[SUBWORD_MODEL_KEY] = base64.b64encode(model).decode("ascii")
        return cls(vocab)

    @cached_property
    def _sp(self):
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=base64.b64decode(self.vocab[SUBWORD_MODEL_KEY]))

    def __getstate__(self) -> dict:  # data loader workers: the processor is rebuilt from the vocabulary
        return {"vocab": self.vocab}

    def __setstate__(self, state: dict) -> None:
        self.vocab = state["vocab"]

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def __len__(self) -> int:
        """The number of ids (the CTC head's width): blank + the pieces."""
        return self._sp.get_piece_size() + 1

    @cached_property
    def text_config(self) -> TextConfig:
        """How text is normalized for this vocabulary: as `vocabulary_text_config` says of its pieces' characters."""
        pieces = (p for p in self.vocab if p not in (BLANK, UNK, SUBWORD_MODEL_KEY))
        return vocabulary_text_config({c for p in pieces for c in p if c != SUBWORD_MARK})

    def encode(self, text: str) -> list[int]:
        """Text -> ids (no blanks), normalized as the vocabulary implies; unknown characters become <unk>."""
        return [i + 1 for i in self._sp.encode(normalize_text(text, self.text_config))]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids with CTC repeats and blanks already removed -> text (<unk> dropped)."""
        pieces = [int(i) - 1 for i in ids if int(i) not in (self.blank_id, self.unk_id)]
        return " ".join(self._sp.decode(pieces).split())

    decode_ctc = CharTokenizer.decode_ctc  # greedy CTC is the same over pieces: merge repeats, drop blanks
    decode_ctc_batch = CharTokenizer.decode_ctc_batch
    extend_ctc = CharTokenizer.extend_ctc


Tokenizer = Union[CharTokenizer, SubwordTokenizer]


def make_tokenizer(vocab: dict[str, Any]) -> Tokenizer:
    """The tokenizer of a vocabulary dict (a checkpoint's): sub-word when it holds a sentencepiece model."""
    return SubwordTokenizer(vocab) if SUBWORD_MODEL_KEY in vocab else CharTokenizer(vocab)


def train_tokenizer(texts: Iterable[str], subword_vocab_size: Optional[int] = None) -> Tokenizer:
    """A new run's tokenizer from its training texts: characters, or BPE pieces (at most `subword_vocab_size`)."""
    if subword_vocab_size is None:
        return CharTokenizer.from_texts(texts)
    return SubwordTokenizer.from_texts(texts, vocab_size=subword_vocab_size)
