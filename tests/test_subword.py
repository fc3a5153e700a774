"""Sub-word (sentencepiece BPE) CTC heads: `asr_poc.text.SubwordTokenizer`, chosen by `training.subword_vocab_size`.

The tokenizer round-trips text, decodes CTC frames as `CharTokenizer` does, travels inside the checkpoint's vocabulary
(a checkpoint alone rebuilds it), a tiny model trains with it through the real trainer, and beam search with a
character or word LM refuses it with one clear line (an `LMError`: the Test tab then decodes greedily).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_poc.config import ConfigError, load_config
from asr_poc.decoding.beam import make_decoder
from asr_poc.decoding.lm import LMError
from asr_poc.inference import Transcriber
from asr_poc.models.interface import BaseASRModel
from asr_poc.runs import Run
from asr_poc.text import SUBWORD_MODEL_KEY, CharTokenizer, SubwordTokenizer, make_tokenizer
from asr_poc.training.trainer import train
from conftest import tiny_config

TEXTS = ["the quick brown fox jumps over the lazy dog", "she sells sea shells by the sea shore",
         "it's the end of the world as we know it", "a stitch in time saves nine"] * 4


@pytest.fixture(scope="module")
def bpe() -> SubwordTokenizer:
    return SubwordTokenizer.from_texts(TEXTS, vocab_size=64)


def test_round_trip_normalizes_as_characters_do(bpe: SubwordTokenizer) -> None:
    assert bpe.blank_id == 0 and bpe.vocab["<pad>"] == 0 and 32 < len(bpe) <= 65
    assert set(bpe.vocab) - {SUBWORD_MODEL_KEY} and all(isinstance(i, int) for p, i in bpe.vocab.items()
                                                        if p != SUBWORD_MODEL_KEY)
    assert sorted(i for p, i in bpe.vocab.items() if p != SUBWORD_MODEL_KEY) == list(range(len(bpe)))
    ids = bpe.encode("The  Quick, brown FOX!")
    assert 0 not in ids and len(ids) < len("the quick brown fox")  # pieces, not characters
    assert bpe.decode(ids) == "the quick brown fox"
    assert bpe.decode(bpe.encode("it's a brown shell")) == "it's a brown shell"
    assert bpe.decode(bpe.encode("zebra 42")) == "zebra"  # digits are not kept by the default normalization
    assert bpe.text_config.script == "ascii"


def test_ctc_decoding_merges_repeats_drops_blanks_and_batches(bpe: SubwordTokenizer) -> None:
    ids = bpe.encode("sea shells sea shells")
    frames = [0]
    for i in ids:
        frames += [i, i, 0]
    assert bpe.decode_ctc(frames) == "sea shells sea shells"
    logits = torch.full((2, len(frames) + 3, len(bpe)), -5.0)
    for t, i in enumerate(frames):
        logits[0, t, i] = logits[1, t, i] = 5.0
    logits[:, len(frames):, 0] = 5.0
    assert bpe.decode_ctc_batch(logits, torch.tensor([len(frames), 4])) == [
        "sea shells sea shells", bpe.decode_ctc(frames[:4])]
    tokens: list[int] = []
    last = bpe.extend_ctc(frames[:5], tokens, bpe.blank_id)
    bpe.extend_ctc(frames[5:], tokens, last)  # streaming: repeats merge across calls
    assert bpe.decode(tokens) == "sea shells sea shells"


def test_the_vocabulary_alone_rebuilds_the_tokenizer(bpe: SubwordTokenizer) -> None:
    again = make_tokenizer(dict(bpe.vocab))
    assert isinstance(again, SubwordTokenizer) and again.encode("the lazy dog") == bpe.encode("the lazy dog")
    assert pickle.loads(pickle.dumps(bpe)).decode(bpe.encode("nine")) == "nine"  # data loader workers
    assert isinstance(make_tokenizer(CharTokenizer.from_texts(TEXTS).vocab), CharTokenizer)
    with pytest.raises(ValueError, match="sub-word"):
        CharTokenizer(bpe.vocab)
    broken = {**bpe.vocab, "the": 999}
    with pytest.raises(ValueError, match="pieces"):
        SubwordTokenizer(broken)


def test_subword_vocab_size_is_validated(small_corpus: Path, tmp_path: Path) -> None:
    assert tiny_config(small_corpus, tmp_path)["training"]["subword_vocab_size"] is None  # characters by default
    with pytest.raises(ConfigError, match="subword_vocab_size"):
        load_config(None, ["training.subword_vocab_size=2"])


def test_a_tiny_model_trains_with_bpe_and_its_checkpoint_rebuilds_it(small_corpus: Path, tmp_path: Path) -> None:
    run = Run.create(tiny_config(small_corpus, tmp_path, "training.max_steps=12", "training.subword_vocab_size=48",
                                 "training.learning_rate=0.003"))
    assert train(run)["state"] == "finished", run.status
    losses = [e["loss"] for e in run.events("step")]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3]), losses

    model = BaseASRModel.from_checkpoint(run.last_checkpoint)  # the checkpoint alone: weights and sentencepiece model
    assert isinstance(model.tokenizer, SubwordTokenizer) and model.head.out_features == len(model.tokenizer)
    transcriber = Transcriber.from_checkpoint(run.last_checkpoint)
    text = transcriber.transcribe(np.zeros(16000, dtype=np.float32)).text
    assert isinstance(text, str)

    with pytest.raises(LMError, match="sub-word") as refused:
        make_decoder(model.tokenizer, {"method": "beam", "lexicon": False})
    assert "\n" not in str(refused.value) and "greedy" in str(refused.value)
    assert make_decoder(model.tokenizer, {"method": "greedy"}).transcribe(
        model, torch.zeros(1, 16000), torch.tensor([16000])) == [text]


def test_tokens_txt_of_a_sub_word_head_lists_its_pieces_by_id(bpe: SubwordTokenizer, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from asr_poc.export_streaming import write_tokens

    lines = write_tokens(bpe, tmp_path / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(bpe) and all(SUBWORD_MODEL_KEY not in line for line in lines)
    assert [int(line.rsplit(" ", 1)[1]) for line in lines] == list(range(len(bpe)))
