"""The effects of `asr_poc.augment` applied to a padded batch on its own device: the trainer's GPU, not the workers.

Augmenting one utterance at a time in DataLoader workers costs about 4.6 ms of CPU per utterance (216 audio seconds
per CPU second with the default effects, benchmarks/README.md): a GPU step that trains 3,700 audio seconds a
second would need 17 cores of workers for it, and on an H200 the trainer reached only 20-45% of the model step's
throughput. `BatchAugmenter` runs the same effects, with the same ranges and in the same order, as a few batched
FFTs, resamplings and gathers on the batch's device, so the workers only read audio (`training.augment_in`).

    speed, reverb, babble, noise, band_limit, telephone, gain    batched here
    pitch (a phase vocoder), codec (FFmpeg)                      stay in the workers (`split_config`)

Two differences from the per-utterance `Augmenter`: babble mixes in other utterances of the same batch (not of the
whole split), and an effect's parameters are drawn for every row of the batch, then used for the rows it happens
to. Random draws come from a generator seeded with (seed, rank, utterances seen before this batch): a resumed run
augments its batches as the run it continues did, and each DDP rank draws its own.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torchaudio.functional as AF

from .augment import AugmentConfig, _fft_size, band_pass, fft_convolve, room_impulse_responses

BATCH_EFFECTS = ("speed", "reverb", "babble", "noise", "band_limit", "telephone", "gain")
WORKER_EFFECTS = ("pitch", "codec")  # no batched form: they stay in the DataLoader workers


def split_config(config: AugmentConfig) -> tuple[AugmentConfig, AugmentConfig]:
    """(what stays in the workers, what moves to batches): `config` with the other part's probabilities at 0."""
    return (config.model_copy(update={e: 0.0 for e in BATCH_EFFECTS}),
            config.model_copy(update={e: 0.0 for e in WORKER_EFFECTS}))


def valid_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) float mask: 1 on each row's first `lengths[b]` samples, 0 on its padding."""
    return (torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]).float()


def masked_rms(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B,) root mean square of each row over its valid samples."""
    return ((x * x * valid).sum(1) / valid.sum(1).clamp_min(1.0)).sqrt()


def mix_rows_at_snr(speech: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor,
                    valid: torch.Tensor) -> torch.Tensor:
    """Each row of `speech` plus its row of `noise`, scaled to `snr_db[b]` below that row's speech power."""
    scale = masked_rms(speech, valid) / (masked_rms(noise, valid).clamp_min(1e-9) * 10 ** (snr_db / 20))
    return speech + scale[:, None] * noise * valid


class BatchAugmenter:
    """Applies the batched effects of an `AugmentConfig` to (waveforms (B, T), lengths (B,)) on their device."""

    def __init__(self, config: AugmentConfig, sample_rate: int, seed: int = 0, rank: int = 0):
        self.config = config
        self.sample_rate = sample_rate
        self.seed, self.rank = int(seed), int(rank)
        self._seen = 0  # training utterances before the next batch (the ramp's count and the generator's seed)
        self._rirs: dict[torch.device, torch.Tensor] = {}

    def active_effects(self) -> list[str]:
        return [e for e in BATCH_EFFECTS if getattr(self.config, e) > 0]

    def start_at(self, utterances_seen: int) -> None:
        """Set the count of training utterances that came before the next batch (at each loader's start)."""
        self._seen = int(utterances_seen)

    def strength(self) -> float:
        """The factor (0..1) on every probability: 1 without a ramp, else the share of the ramp done."""
        ramp = self.config.ramp_utterances
        return 1.0 if ramp <= 0 else min(1.0, self._seen / ramp)

    def rirs(self, device: torch.device) -> torch.Tensor:
        """The room impulse-response bank as one (rooms, longest) tensor on `device`, zero-padded."""
        if device not in self._rirs:
            bank = [torch.from_numpy(r) for r in room_impulse_responses(self.config.rooms, self.sample_rate)]
            padded = torch.zeros(len(bank), max(r.numel() for r in bank))
            for i, r in enumerate(bank):
                padded[i, : r.numel()] = r
            self._rirs[device] = padded.to(device)
        return self._rirs[device]

    def __call__(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented batch and its lengths (speed changes them); padding stays zero, samples within [-1, 1]."""
        device = waveforms.device
        generator = torch.Generator(device=device)
        generator.manual_seed(((self.seed * 1_000_003 + self.rank) * 1_000_000_007 + self._seen) % 2**63)
        strength = self.strength()
        self._seen += len(waveforms)
        x, lengths = waveforms.float(), lengths.to(device)
        if not len(x):
            return x, lengths
        draw = _Draws(len(x), device, generator)
        for effect in BATCH_EFFECTS:
            p = getattr(self.config, effect) * strength
            if p > 0:
                rows = draw.uniform(0.0, 1.0) < p
                x, lengths = getattr(self, effect)(x, lengths, rows, draw)
        return (x.clamp(-1.0, 1.0) * valid_mask(lengths, x.shape[1])).contiguous(), lengths

    # ---- the effects: each takes the batch, its lengths, the rows it happens to and the draws -----------------------

    def speed(self, x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, draw: "_Draws"):
        """Resample the chosen rows by factors of 0.9-1.1 in steps of 0.01 (one resampling per distinct factor)."""
        factors = torch.where(rows, torch.round(draw.uniform(*self.config.speed_range) * 100) / 100, 1.0)
        factors_list = factors.tolist()
        groups: dict[float, list[int]] = {}
        for b, f in enumerate(factors_list):
            if f != 1.0:
                groups.setdefault(f, []).append(b)
        if not groups:
            return x, lengths
        resampled, new_lengths = [], lengths.clone()
        for f, members in groups.items():
            orig, new = round(self.sample_rate * f), self.sample_rate  # 1.1 -> 10% shorter, as Augmenter.speed
            g = math.gcd(orig, new)
            index = torch.tensor(members, device=x.device)
            resampled.append((index, AF.resample(x[index], orig, new)))
            new_lengths[index] = torch.ceil(lengths[index] * (new // g) / (orig // g)).long()
        width = int(new_lengths.max())  # every resampled row is at least its new length long
        y = torch.zeros(len(x), width, device=x.device)
        y[:, : min(width, x.shape[1])] = x[:, :width]
        for index, out in resampled:
            y[index] = 0.0
            y[index, : min(width, out.shape[1])] = out[:, :width]
        return y * valid_mask(new_lengths, width), new_lengths

    def reverb(self, x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, draw: "_Draws"):
        bank = self.rirs(x.device)
        room = draw.integers(len(bank))
        return _on_rows(x, lengths, rows, lambda xs, valid, pick: _reverberate(xs, bank[room[pick]], valid))

    def babble(self, x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, draw: "_Draws"):
        """2-5 other utterances of the batch under each chosen row, tiled to its length, 5-20 dB below it."""
        batch, width = x.shape
        voices = 2 + draw.integers(4)
        snr = draw.uniform(*self.config.babble_snr_db)
        sources = [(torch.arange(batch, device=x.device) + 1 + draw.integers(max(1, batch - 1))) % batch
                   for _ in range(5)]
        offsets = [draw.integers_below(lengths) for _ in range(5)]
        if batch < 2:
            return x, lengths
        valid = valid_mask(lengths, width)
        t = torch.arange(width, device=x.device)[None, :]
        crowd = torch.zeros_like(x)
        for k, (source, offset) in enumerate(zip(sources, offsets)):
            positions = (t - offset[:, None]) % lengths[source].clamp_min(1)[:, None]
            other = x[source].gather(1, positions) * valid
            crowd += (voices > k)[:, None] * other / masked_rms(other, valid).clamp_min(1e-9)[:, None]
        mixed = mix_rows_at_snr(x, crowd, snr, valid)
        return torch.where(rows[:, None], mixed, x), lengths

    def noise(self, x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, draw: "_Draws"):
        """White, pink (1/f) or brown (1/f^2) noise at 5-30 dB SNR, shaped in the frequency domain."""
        exponent = torch.tensor([0.0, 0.5, 1.0], device=x.device)[draw.integers(3)]
        snr = draw.uniform(*self.config.snr_db)
        size = _fft_size(x.shape[1])

        def add(xs, valid, pick):
            spectrum = torch.fft.rfft(torch.randn(len(pick), size, generator=draw.generator, device=x.device))
            f = torch.arange(spectrum.shape[1], device=x.device, dtype=torch.float32).clamp_min(1.0)
            coloured = torch.fft.irfft(spectrum / f[None, :] ** exponent[pick, None], size)[:, : xs.shape[1]]
            return mix_rows_at_snr(xs, coloured, snr[pick], valid)

        return _on_rows(x, lengths, rows, add)

    def band_limit(self, x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, draw: "_Draws"):
        low = draw.uniform(50.0, 300.0)
        high = torch.clamp(draw.uniform(3000.0, 7500.0), max=self.sample_rate * 0.45)
        return _on_rows(x, lengths, rows, lambda xs, valid, pick: band_pass(
            xs, self.sample_rate, low[pick, None], high[pick, None]))

    def telephone(self, x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, draw: "_Draws"):
        """The 300-3400 Hz band, quantised with G.711 mu-law (8 bits)."""
        def narrow(xs, valid, pick):
            band = band_pass(xs, self.sample_rate, 300.0, 3400.0, slope_hz=100.0) * valid
            peak = band.abs().amax(1, keepdim=True).clamp_min(1e-9)
            return AF.mu_law_decoding(AF.mu_law_encoding(band / peak, 256), 256) * peak

        return _on_rows(x, lengths, rows, narrow)

    def gain(self, x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, draw: "_Draws"):
        factor = torch.where(rows, 10 ** (draw.uniform(*self.config.gain_db) / 20), 1.0)
        return x * factor[:, None], lengths


class _Draws:
    """Per-row random draws from one generator on the batch's device (drawn for every row, used where chosen)."""

    def __init__(self, batch: int, device: torch.device, generator: torch.Generator):
        self.batch, self.device, self.generator = batch, device, generator

    def uniform(self, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(self.batch, generator=self.generator, device=self.device)

    def integers(self, n: int) -> torch.Tensor:
        return torch.randint(0, n, (self.batch,), generator=self.generator, device=self.device)

    def integers_below(self, limits: torch.Tensor) -> torch.Tensor:
        """One integer in [0, limits[b]) per row."""
        return (self.uniform(0.0, 1.0) * limits.clamp_min(1)).long()


def _on_rows(x: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, effect) -> tuple[torch.Tensor, torch.Tensor]:
    """`effect(x[pick], valid[pick], pick)` written back into the chosen rows only (the others cost nothing)."""
    pick = rows.nonzero().squeeze(1)
    if pick.numel() == 0:
        return x, lengths
    valid = valid_mask(lengths[pick], x.shape[1])
    out = x.clone()
    out[pick] = effect(x[pick], valid, pick) * valid
    return out, lengths


def _reverberate(x: torch.Tensor, rirs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each row convolved with its room's response, cut to its length, at the row's own loudness."""
    wet = fft_convolve(x, rirs) * valid
    return wet * (masked_rms(x, valid) / masked_rms(wet, valid).clamp_min(1e-9))[:, None]


def batch_augmenter(config: Optional[AugmentConfig], sample_rate: int, seed: int, rank: int
                    ) -> Optional[BatchAugmenter]:
    """A `BatchAugmenter` for `config`'s batched effects, or None when none of them is on."""
    augmenter = BatchAugmenter(config, sample_rate, seed=seed, rank=rank) if config is not None else None
    return augmenter if augmenter is not None and augmenter.active_effects() else None
