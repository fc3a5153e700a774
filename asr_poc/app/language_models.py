"""Language models for beam search, as `asr-poc lm build` makes them and the Test tab offers them: word and
character n-grams with a lexicon from a data set's transcripts or text files, the offline English 3-gram, and the
decodings a config makes available.

The estimating and reading are `asr_poc.decoding.lm` (no torch); these are its own functions.
"""
from __future__ import annotations

from ..decoding.lm import (build_english_lm, build_lm, dataset_texts, decoding_choices, parse_hotwords,
                          text_file_sentences)

__all__ = ["build_english_lm", "build_lm", "dataset_texts", "decoding_choices", "parse_hotwords",
           "text_file_sentences"]
