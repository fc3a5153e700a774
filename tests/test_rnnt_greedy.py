"""Batched greedy transducer search (`rnnt_greedy.greedy_batch`) equals the one-utterance search, row by row."""
from __future__ import annotations

import pytest
import torch

from asr_poc.models.rnnt import MAX_SYMBOLS_PER_FRAME, EmformerRNNT, RNNTConfig
from asr_poc.models.rnnt_greedy import greedy_batch
from asr_poc.text import CharTokenizer

VOCAB = CharTokenizer.from_texts(["the quick brown fox jumps over the lazy dog"]).vocab
TINY = dict(encoder_dim=32, num_heads=2, num_layers=1, ffn_dim=64, predictor_dim=32, joiner_dim=48, dropout=0.0,
            ctc_warmup_steps=0)


def tiny(blank_bias: float, **overrides) -> EmformerRNNT:
    """A random transducer; `blank_bias` on the joiner's blank logit sets how often it emits (0: nearly always, up to
    MAX_SYMBOLS_PER_FRAME a frame; larger: a mix of blanks and emissions, as a trained model)."""
    torch.manual_seed(0)
    model = EmformerRNNT({**RNNTConfig(**{**TINY, **overrides}).model_dump(), "vocab": VOCAB}).eval()
    with torch.no_grad():
        model.model.joiner.linear.weight.mul_(4.0)
        model.model.joiner.linear.bias[model.blank] += blank_bias
    return model


def one_by_one(model: EmformerRNNT, enc: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    return [model.greedy(enc[i, : int(n)]).tokens for i, n in enumerate(lengths)]


@pytest.mark.parametrize("blank_bias", [0.0, 2.0, 4.0])
def test_batched_greedy_equals_per_utterance_greedy_on_random_frames(blank_bias):
    model = tiny(blank_bias)
    width = model.model.joiner.linear.in_features
    lengths = torch.tensor([13, 1, 0, 29, 7, 29])
    enc = torch.randn(len(lengths), 29, width, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = one_by_one(model, enc, lengths)
        got = greedy_batch(model.model, enc, lengths, model.blank, MAX_SYMBOLS_PER_FRAME)
    assert got == want
    emitted = [len(t) for t in want]
    assert emitted[2] == 0 and max(emitted) > 0  # an empty row, and rows that emit
    if blank_bias == 0.0:
        assert any(n >= 2 * int(m) for n, m in zip(emitted, lengths) if m)  # several symbols a frame are exercised


@pytest.mark.parametrize("encoder", ["emformer", "conformer"])
def test_transcribe_decodes_a_padded_batch_as_each_utterance_alone(encoder):
    model = tiny(3.0, encoder=encoder)
    seconds = [0.45, 1.3, 0.8, 1.05]
    waves = [torch.randn(int(s * 16000), generator=torch.Generator().manual_seed(i)) * 0.1
             for i, s in enumerate(seconds)]
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    with torch.inference_mode():
        enc, enc_lengths = model.encode(batch, lengths)
        want = [model.tokenizer.decode(t) for t in one_by_one(model, enc, enc_lengths)]
        assert model.transcribe(batch, lengths) == want
    assert any(want)
