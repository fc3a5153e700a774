"""The log-mel front end, offline (`LogMel`) and incremental (`StreamingLogMel`), and its settings (`FeatureSpec`).

Both compute the same log10 mel power frames (25 ms windows every 10 ms at 16 kHz by default), then normalize
them as `FeatureSpec.normalize` says:

- `none`: a fixed offset and scale, `(log10 mel + 4) / 4` (checkpoints written before this setting existed).
- `utterance`: each mel bin minus its mean over the utterance's frames, `/ 4` (cepstral mean normalization:
  a constant gain or a microphone's colouring is a constant offset per bin in the log domain, and goes). Only
  frames within 30 dB of the loudest one count (`SPEECH_RANGE`), so leading or trailing silence does not move it.
  It needs the whole utterance: streamed, it is approximated by the causal mean below.
- `causal`: each frame minus the running mean of the frames so far, blended with a prior mean worth
  `prior_frames` frames: `mean_t = (prior_frames * prior + sum_{s<=t} x_s) / (prior_frames + t + 1)`. It uses no
  future frame, so streaming computes exactly what the offline pass computes.

The prior is the buffer `LogMel.prior_mean` (n_mels,), initialised to the `none` offset (-4) and, in training
mode, moved towards the mean of each batch's utterance means (an exponential average, like batch norm's running
statistics), so it is stored with the weights and the checkpoint alone carries it.
"""
from __future__ import annotations

from typing import Literal

import torch
import torchaudio
from pydantic import BaseModel, ConfigDict, Field

LOG_OFFSET = 4.0  # log10 mel power of speech at normal levels is around -4 ...
LOG_SCALE = 4.0  # ... and spans a few units: features are (log10 - mean) / 4
SPEECH_RANGE = 3.0  # the utterance mean counts frames within 30 dB of the loudest: a second of silence before the
# speech (a microphone opened early, digital zeros) would otherwise pull every bin's mean down and shift all frames
PRIOR_MOMENTUM = 0.01  # how far each training batch moves `prior_mean` towards its own mean
Normalize = Literal["none", "utterance", "causal"]


class FeatureSpec(BaseModel):
    """Log-mel settings (the config's `features` section); saved in every checkpoint so that it alone transcribes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sample_rate: int = Field(16000, ge=4000, le=192000)  # audio is resampled to this rate on load
    n_fft: int = Field(400, ge=16, le=8192)  # STFT window (25 ms at 16 kHz)
    hop_length: int = Field(160, ge=1, le=8192)  # one frame every hop (10 ms at 16 kHz)
    n_mels: int = Field(80, ge=8, le=512)
    normalize: Normalize = "none"  # none | utterance | causal (see the module docstring); old checkpoints: none
    prior_frames: int = Field(100, ge=0, le=100_000)  # weight of the prior mean in the causal running mean

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        return cls.model_validate(d)

    def to_dict(self) -> dict:
        return self.model_dump()

    @property
    def hop_ms(self) -> float:
        return 1000.0 * self.hop_length / self.sample_rate


def causal_mean(feats: torch.Tensor, prior: torch.Tensor, prior_frames: int, seen: torch.Tensor | None = None,
                count: int = 0) -> torch.Tensor:
    """Running mean of log-mel frames (B, n_mels, T) at each frame, blended with `prior` (n_mels,).

    `seen` (B, n_mels) and `count` are the sum and number of frames before these (streaming); returns (B, n_mels, T).
    """
    total = feats.cumsum(-1) + prior_frames * prior[None, :, None]
    if seen is not None:
        total = total + seen[:, :, None]
    frames = torch.arange(count + 1, count + feats.shape[-1] + 1, device=feats.device, dtype=feats.dtype)
    return total / (prior_frames + frames)


class LogMel(torch.nn.Module):
    """Waveforms (batch, time) -> normalized log-mel features (batch, frames, n_mels) and frame lengths.

    Runs on the input's device. With `spec_augment=True`, training mode masks 2 frequency bands and 2 time spans
    (SpecAugment, torchaudio) after normalization.
    """

    def __init__(self, features: FeatureSpec, spec_augment: bool = False):
        super().__init__()
        self.features = features
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=features.sample_rate, n_fft=features.n_fft, hop_length=features.hop_length,
            n_mels=features.n_mels, center=True,
        )
        if features.normalize != "none":  # no buffer for `none`: checkpoints from before normalization load as-is
            self.register_buffer("prior_mean", torch.full((features.n_mels,), -LOG_OFFSET))
        self.spec_augment = spec_augment
        self.freq_mask = torchaudio.transforms.FrequencyMasking(freq_mask_param=15, iid_masks=True)
        self.time_mask = torchaudio.transforms.TimeMasking(time_mask_param=25, iid_masks=True, p=0.2)

    def frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return sample_lengths // self.features.hop_length + 1

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, T) -> log10 mel power (B, n_mels, frames), in float32 whatever autocast says."""
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            return self.mel(waveforms.float()).clamp_min(1e-10).log10()

    def normalize(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Log10 mel (B, n_mels, T) with `frames` (B,) valid frames -> normalized (B, n_mels, T) (module docstring)."""
        mode = self.features.normalize
        if mode == "none":
            return (feats + LOG_OFFSET) / LOG_SCALE
        valid = torch.arange(feats.shape[-1], device=feats.device)[None, :] < frames[:, None]  # (B, T)
        energy = feats.mean(1)  # (B, T): the frame's mean log10 mel power
        loudest = energy.masked_fill(~valid, float("-inf")).amax(-1, keepdim=True)
        speech = (valid & (energy >= loudest - SPEECH_RANGE)).to(feats.dtype)  # pauses and digital silence left out
        utterance = (feats * speech[:, None, :]).sum(-1) / speech.sum(-1, keepdim=True).clamp_min(1)  # (B, n_mels)
        if self.training:
            with torch.no_grad():
                self.prior_mean.lerp_(utterance.mean(0), PRIOR_MOMENTUM)
        if mode == "utterance":
            mean = utterance[:, :, None]
        else:
            mean = causal_mean(feats, self.prior_mean, self.features.prior_frames)
        return (feats - mean) / LOG_SCALE

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.frame_lengths(lengths)
        feats = self.normalize(self.log_mel(waveforms), frames)
        if self.training and self.spec_augment:
            for _ in range(2):
                feats = self.freq_mask(feats)
                feats = self.time_mask(feats)
        return feats.transpose(1, 2), frames


def add_centred_samples(samples: torch.Tensor, state: dict, pad: int, final: bool) -> None:
    """Append new samples to `state["pending"]` as `torch.stft(center=True)` pads the whole signal: reflect padding
    of `pad` samples before the first (once `pad` + 1 have arrived) and, at `final`, after the last. `state` holds
    "pending", "tail" (the last pad + 1 samples) and "started"."""
    samples = samples.detach().float().reshape(-1).cpu()
    if samples.numel():
        state["tail"] = torch.cat([state["tail"], samples])[-(pad + 1):]
        state["pending"] = torch.cat([state["pending"], samples])
    if not state["started"] and state["pending"].numel() > pad:
        head = state["pending"][1 : pad + 1].flip(0)
        state["pending"], state["started"] = torch.cat([head, state["pending"]]), True
    if final and state["started"]:
        state["pending"] = torch.cat([state["pending"], state["tail"][-pad - 1 : -1].flip(0)])


class StreamingLogMel:
    """Log-mel frames computed incrementally: the frames `LogMel` computes on the whole waveform.

    `LogMel` centres its STFT windows (`center=True`, reflect padding of n_fft/2 at both ends). Here the left
    padding is added once n_fft/2 + 1 samples have arrived, each frame is computed as soon as its window is
    complete, and `final=True` adds the right padding. A frame therefore waits n_fft/2 - hop samples after its
    hop ends (2.5 ms at 16 kHz with n_fft 400, hop 160): `BaseASRModel.frontend_delay_ms`.

    Normalization: `none` and `causal` give exactly the offline frames; `utterance` cannot see the rest of the
    utterance and uses the `causal` running mean instead (close once a second or two has been heard).
    """

    def __init__(self, frontend: LogMel):
        f = frontend.features
        self.features = f
        self.n_fft, self.hop, self.pad = f.n_fft, f.hop_length, f.n_fft // 2
        self.spectrogram = torchaudio.transforms.Spectrogram(n_fft=f.n_fft, hop_length=f.hop_length, center=False,
                                                             power=2.0)
        self.mel_scale = frontend.mel.mel_scale  # the same filter bank as the offline frontend
        self.prior = frontend.prior_mean.detach().cpu() if f.normalize != "none" else None

    def init_state(self) -> dict:
        return {"pending": torch.zeros(0), "tail": torch.zeros(0), "started": False,
                "sum": torch.zeros(1, self.features.n_mels), "count": 0}

    def __call__(self, samples: torch.Tensor, state: dict, final: bool = False) -> torch.Tensor:
        """New samples -> the log-mel frames (frames, n_mels) that became complete; `state` is updated in place."""
        add_centred_samples(samples, state, self.pad, final)
        if final and not state["started"]:  # shorter than half a window: the offline frontend cannot read it either
            state["pending"] = torch.zeros(0)
            return torch.zeros(0, self.mel_scale.n_mels)
        pending = state["pending"]
        if not state["started"] or pending.numel() < self.n_fft:
            return torch.zeros(0, self.mel_scale.n_mels)
        frames = (pending.numel() - self.n_fft) // self.hop + 1
        power = self.spectrogram(pending[: (frames - 1) * self.hop + self.n_fft])
        state["pending"] = pending[frames * self.hop :]
        feats = self.mel_scale(power.to(self.mel_scale.fb.device)).cpu().clamp_min(1e-10).log10()  # (n_mels, T)
        return self._normalize(feats, state).transpose(0, 1)

    def _normalize(self, feats: torch.Tensor, state: dict) -> torch.Tensor:
        if self.prior is None:
            return (feats + LOG_OFFSET) / LOG_SCALE
        mean = causal_mean(feats[None], self.prior, self.features.prior_frames, state["sum"], state["count"])[0]
        state["sum"] = state["sum"] + feats.sum(-1)[None]
        state["count"] += feats.shape[-1]
        return (feats - mean) / LOG_SCALE
