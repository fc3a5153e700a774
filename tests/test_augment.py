"""On-the-fly augmentation (asr_poc.augment) and its hook in the data sets' train split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asr_poc.augment import EFFECTS, AugmentConfig, Augmenter, band_pass, coloured_noise, mix_at_snr

RATE = 16000


def _speech_like(seconds: float = 1.5) -> torch.Tensor:
    """Harmonics of 150 Hz up to 6 kHz under a syllable-rate envelope."""
    t = torch.arange(int(seconds * RATE)) / RATE
    tone = sum(torch.sin(2 * torch.pi * 150 * k * t) / k for k in range(1, 40))
    return (0.3 * tone / tone.abs().max() * (0.6 + 0.4 * torch.sin(2 * torch.pi * 4 * t))).float()


def _band_energy(x: torch.Tensor, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(x).abs() ** 2
    f = torch.fft.rfftfreq(x.numel(), 1 / RATE)
    return float(spectrum[(f >= low) & (f < high)].sum())


def test_config_defaults_off_and_validation() -> None:
    assert not AugmentConfig().active()
    assert AugmentConfig(noise=0.5).active()
    for bad in ({"speed": 1.5}, {"snr_db": [30, 5]}, {"speed_range": [0.1, 1.0]}, {"reverbb": 0.3}):
        with pytest.raises(ValueError):
            AugmentConfig(**bad)


@pytest.mark.parametrize("effect", [e for e in EFFECTS if e != "codec"])
def test_each_effect_changes_the_audio_and_keeps_it_valid(effect: str) -> None:
    x = _speech_like()
    torch.manual_seed(0)
    augment = Augmenter(AugmentConfig(**{effect: 1.0}, rooms=2), RATE, other_utterance=lambda: _speech_like(0.7) * 0.5)
    for _ in range(3):  # one draw may be (almost) the identity: a speed factor of 1.0, 0 dB of gain
        y = augment(x)
        if y.numel() != x.numel() or not torch.allclose(y, x, atol=1e-3):
            break
    assert torch.isfinite(y).all() and float(y.abs().max()) <= 1.0
    assert y.numel() != x.numel() or not torch.allclose(y, x, atol=1e-3), f"{effect} left the audio unchanged"
    if effect != "speed":
        assert y.numel() == x.numel()


def test_speed_changes_the_length_within_the_range() -> None:
    x = _speech_like()
    augment = Augmenter(AugmentConfig(speed=1.0, speed_range=[0.9, 1.1]), RATE)
    lengths = {augment(x).numel() for _ in range(10)}
    assert len(lengths) > 2 and all(x.numel() / 1.11 <= n <= x.numel() / 0.89 for n in lengths)


def test_same_seed_same_augmentation() -> None:
    x = _speech_like()
    config = AugmentConfig(speed=0.5, noise=0.5, band_limit=0.5, gain=0.5, telephone=0.5)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        augment = Augmenter(config, RATE)
        runs.append([augment(x) for _ in range(4)])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_mix_at_snr_hits_the_requested_ratio() -> None:
    speech, noise = _speech_like(), coloured_noise(RATE, "pink")
    mixed = mix_at_snr(speech, noise, 10.0)
    added = mixed - speech
    snr = 10 * np.log10(float(speech.pow(2).mean()) / float(added.pow(2).mean()))
    assert snr == pytest.approx(10.0, abs=0.01)


def test_band_pass_and_telephone_remove_what_lies_outside() -> None:
    x = _speech_like()
    y = band_pass(x, RATE, 300.0, 3000.0)
    assert _band_energy(y, 4000, 8000) < 1e-4 * _band_energy(x, 4000, 8000)
    assert _band_energy(y, 800, 2500) > 0.9 * _band_energy(x, 800, 2500)
    phone = Augmenter(AugmentConfig(telephone=1.0), RATE)(x)
    assert _band_energy(phone, 4500, 8000) < 0.02 * _band_energy(x, 4500, 8000)


def test_reverb_spreads_energy_in_time() -> None:
    click = torch.zeros(RATE)
    click[100] = 0.5
    torch.manual_seed(0)
    wet = Augmenter(AugmentConfig(reverb=1.0, rooms=2), RATE)(click)
    assert float(wet[2000:].abs().sum()) > 10 * float(click[2000:].abs().sum()) + 1e-3


def test_only_the_train_split_is_augmented(small_corpus: Path) -> None:
    from asr_poc.datasets.synthetic import SyntheticDataset

    config = {"path": str(small_corpus), "sample_rate": RATE, "augment": {"noise": 1.0, "snr_db": [5, 5]}}
    train, test = SyntheticDataset(config, "train"), SyntheticDataset(config, "test")
    plain = SyntheticDataset({"path": str(small_corpus), "sample_rate": RATE}, "train")
    assert train.augmenter is not None and test.augmenter is None and plain.augmenter is None
    noisy, clean = train[0]["waveform"], plain[0]["waveform"]
    assert noisy.shape == clean.shape and not torch.allclose(noisy, clean)
    assert torch.equal(test[0]["waveform"], SyntheticDataset({"path": str(small_corpus)}, "test")[0]["waveform"])


def test_ramp_raises_the_probabilities_from_zero() -> None:
    """With a ramp, the first utterances stay clean, the ones after it are augmented as configured."""
    augmenter = Augmenter(AugmentConfig(gain=1.0, gain_db=[-12.0, -12.0], ramp_utterances=1000), RATE)
    x = _speech_like(0.5)
    augmenter.start_at(0)
    assert augmenter.strength() == 0.0 and torch.equal(augmenter(x), x)
    augmenter.start_at(500)
    assert augmenter.strength() == pytest.approx(0.5)
    augmenter.start_at(1000)
    assert augmenter.strength() == 1.0 and not torch.allclose(augmenter(x), x)
    assert Augmenter(AugmentConfig(gain=1.0), RATE).strength() == 1.0  # no ramp: full from the start


def test_the_loader_tells_the_ramp_how_far_training_is(small_corpus: Path) -> None:
    """Each epoch's DataLoader starts the ramp at the utterances trained on before it (resume included)."""
    from asr_poc.config import load_config
    from asr_poc.datasets.synthetic import SyntheticDataset
    from asr_poc.training.setup import Setup
    from asr_poc.training.state import TrainState

    config = {"path": str(small_corpus), "sample_rate": RATE, "augment": {"gain": 1.0, "ramp_utterances": 10_000}}
    train = SyntheticDataset(config, "train")
    cfg = load_config(None, [f"datasets.synthetic.path={small_corpus}", "training.batch_size=4"])

    class _Sampler:
        def set_epoch(self, epoch: int) -> None:
            pass

        def batches(self) -> list[list[int]]:
            return [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    class _Model:
        tokenizer = None

    setup = Setup.__new__(Setup)
    setup.train_set, setup.sampler, setup.training, setup.raw_model = train, _Sampler(), cfg["training"], _Model()
    setup.device = torch.device("cpu")
    state = TrainState()
    state.epoch, state.batch_in_epoch = 2, 1
    setup.loader(state)
    assert train.augmenter._seen_before == 2 * 10 + 4
