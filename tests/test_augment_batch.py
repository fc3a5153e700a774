"""Augmentation of padded batches on the training device (asr_poc.augment_batch) and its place in the trainer."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchaudio.functional as AF

from asr_poc.augment import AugmentConfig
from asr_poc.augment_batch import BATCH_EFFECTS, BatchAugmenter, masked_rms, split_config, valid_mask
from asr_poc.runs import Run
from asr_poc.training.trainer import train
from tests.conftest import tiny_config

RATE = 16000


def _batch(rows: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Speech-like rows (harmonics under a syllable envelope) of 0.6-1.5 s, zero-padded to the longest."""
    lengths = torch.tensor([int(RATE * s) for s in (1.5, 0.6, 1.1, 0.9, 1.3, 0.7)[:rows]])
    x = torch.zeros(rows, int(lengths.max()))
    for b, n in enumerate(lengths.tolist()):
        t = torch.arange(n) / RATE
        tone = sum(torch.sin(2 * torch.pi * (120 + 20 * b) * k * t) / k for k in range(1, 30))
        x[b, :n] = 0.3 * tone / tone.abs().max() * (0.6 + 0.4 * torch.sin(2 * torch.pi * 4 * t))
    return x, lengths


def test_split_config_leaves_pitch_and_codec_to_the_workers() -> None:
    config = AugmentConfig(speed=0.6, pitch=0.3, noise=0.4, codec=0.2, ramp_utterances=100)
    workers, batches = split_config(config)
    assert (workers.pitch, workers.codec, workers.speed, workers.noise) == (0.3, 0.2, 0.0, 0.0)
    assert (batches.pitch, batches.codec, batches.speed, batches.noise) == (0.0, 0.0, 0.6, 0.4)
    assert workers.ramp_utterances == batches.ramp_utterances == 100


@pytest.mark.parametrize("effect", BATCH_EFFECTS)
def test_each_effect_changes_the_chosen_rows_and_keeps_padding_silent(effect: str) -> None:
    x, lengths = _batch()
    augment = BatchAugmenter(AugmentConfig(**{effect: 1.0}, rooms=2), RATE)
    for _ in range(3):  # one draw may be (almost) the identity: a speed factor of 1.0, 0 dB of gain
        y, new_lengths = augment(x, lengths)
        if y.shape != x.shape or not torch.allclose(y, x, atol=1e-3):
            break
    assert torch.isfinite(y).all() and float(y.abs().max()) <= 1.0
    assert y.shape != x.shape or not torch.allclose(y, x, atol=1e-3), f"{effect} left the batch unchanged"
    padding = valid_mask(new_lengths, y.shape[1]) == 0
    assert (y[padding] == 0).all(), "padding must stay zero"
    assert (masked_rms(y, 1 - padding.float()) > 0).all(), "every row keeps its audio"
    if effect != "speed":
        assert torch.equal(new_lengths, lengths) and y.shape == x.shape


def test_speed_equals_resampling_each_row_alone() -> None:
    """Each row comes out as torchaudio resamples that utterance by itself, with the length that gives."""
    x, lengths = _batch()
    y, new_lengths = BatchAugmenter(AugmentConfig(speed=1.0, speed_range=[0.9, 1.1]), RATE)(x, lengths)
    changed = 0
    for b in range(len(x)):
        n = int(lengths[b])
        for factor in [f / 100 for f in range(90, 111)]:
            alone = AF.resample(x[b, :n], round(RATE * factor), RATE)
            if alone.numel() == int(new_lengths[b]) and torch.allclose(y[b, : alone.numel()], alone.clamp(-1, 1),
                                                                       atol=1e-4):
                changed += factor != 1.0
                break
        else:
            raise AssertionError(f"row {b} is no resampling of its utterance by a factor of 0.90-1.10")
    assert changed >= 2


def test_noise_lands_at_the_drawn_snr_on_each_row() -> None:
    x, lengths = _batch()
    y, _ = BatchAugmenter(AugmentConfig(noise=1.0, snr_db=[10.0, 10.0]), RATE)(x, lengths)
    valid = valid_mask(lengths, x.shape[1])
    snr = 20 * torch.log10(masked_rms(x, valid) / masked_rms(y - x, valid))
    torch.testing.assert_close(snr, torch.full_like(snr, 10.0), atol=0.05, rtol=0)


def test_gain_scales_each_chosen_row() -> None:
    x, lengths = _batch()
    y, _ = BatchAugmenter(AugmentConfig(gain=1.0, gain_db=[-6.0, -6.0]), RATE)(x, lengths)
    torch.testing.assert_close(y, x * 10 ** (-6 / 20))


def test_babble_mixes_in_other_rows_of_the_batch_only() -> None:
    x, lengths = _batch()
    config = AugmentConfig(babble=1.0, babble_snr_db=[5.0, 5.0])
    y, _ = BatchAugmenter(config, RATE)(x, lengths)
    valid = valid_mask(lengths, x.shape[1])
    snr = 20 * torch.log10(masked_rms(x, valid) / masked_rms(y - x, valid))
    torch.testing.assert_close(snr, torch.full_like(snr, 5.0), atol=0.05, rtol=0)
    alone, _ = BatchAugmenter(config, RATE)(x[:1], lengths[:1])  # nobody else to hear
    torch.testing.assert_close(alone, x[:1])


def test_the_ramp_starts_silent_and_the_draws_follow_the_count() -> None:
    x, lengths = _batch()
    config = AugmentConfig(noise=1.0, gain=1.0, reverb=0.5, rooms=2, ramp_utterances=1000)
    fresh = BatchAugmenter(config, RATE, seed=3)
    torch.testing.assert_close(fresh(x, lengths)[0], x)  # 0 utterances seen: strength 0
    a, b = BatchAugmenter(config, RATE, seed=3), BatchAugmenter(config, RATE, seed=3)
    a.start_at(2000)
    a(x, lengths)  # 4 more utterances
    b.start_at(2004)  # a resumed run: the same count, the same draws
    torch.testing.assert_close(a(x, lengths)[0], b(x, lengths)[0])
    other_rank = BatchAugmenter(config, RATE, seed=3, rank=1)
    other_rank.start_at(2008)
    assert not torch.allclose(other_rank(x, lengths)[0], a(x, lengths)[0])


def _augmented_config(corpus: Path, root: Path, *overrides: str) -> dict:
    return tiny_config(corpus, root, "datasets.synthetic.augment={speed: 0.5, noise: 0.5, gain: 0.5, pitch: 0.2}",
                       "training.augment_in=batches", *overrides)


def test_the_trainer_augments_batches_and_the_workers_keep_the_rest(small_corpus: Path, tmp_path: Path) -> None:
    run = Run.create(_augmented_config(small_corpus, tmp_path, "training.max_steps=3"))
    assert train(run)["state"] == "finished"
    logs = [e["message"] for e in run.events("log")]
    assert any("augmenting batches on cpu: speed, noise, gain" in m for m in logs), logs

    from asr_poc.training.setup import load_data
    from asr_poc.config import validate_config

    train_set, _ = load_data(validate_config(run.config, check_data=False))
    taken = train_set.take_batch_augmentation()
    assert (taken.speed, taken.pitch) == (0.5, 0.0)
    assert train_set.augmenter is not None and train_set.augmenter.config.pitch == 0.2
    assert train_set.augmenter.config.speed == 0.0


def test_resume_is_exact_with_batch_augmentation(small_corpus: Path, tmp_path: Path) -> None:
    """5 steps in one go, and 2 steps + resume for 3 more, give the same weights: the batches' draws follow the
    count of utterances seen, which the resume restores."""
    straight = Run.create(_augmented_config(small_corpus, tmp_path, "training.max_steps=5",
                                            "datasets.synthetic.augment.pitch=0.0"))
    assert train(straight)["state"] == "finished"
    split = Run.create(_augmented_config(small_corpus, tmp_path, "training.max_steps=2",
                                         "datasets.synthetic.augment.pitch=0.0"))
    assert train(split)["state"] == "finished"
    split.override_training(["training.max_steps=5"])
    assert train(split, resume=True)["state"] == "finished"
    a = torch.load(straight.last_checkpoint, weights_only=False)["state_dict"]
    b = torch.load(split.last_checkpoint, weights_only=False)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
