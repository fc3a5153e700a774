"""The log-mel front ends with the STFT computed as two matrix products over a fixed DFT basis.

What the ONNX export puts in its graph instead of `torch.stft`: onnxruntime's `STFT` op computes a 400-point
window (not a power of two) as a direct DFT, one frame at a time, and took half of the exported model's time. Here
the windowed frames (T, n_fft) are cut with reshapes and strided slices (no gather), and the DFT of a real frame is
split into its even and odd halves: Re X[k] = sum_n (x[n] + x[N-n]) cos(2 pi k n / N) over n = 0..N/2 and
Im X[k] = -sum_n (x[n] - x[N-n]) sin(2 pi k n / N) over n = 1..N/2-1, two (N/2+1)-wide matrix products, half the
multiplies of one product with the full basis, each one GEMM that every runtime does fast. The power is re^2 + im^2.

`DFTPowerSpectrogram` matches `torchaudio.transforms.Spectrogram(power=2)` and `torch.stft` (centred, reflect
padding, any window of n_fft samples) up to float32 rounding; `dft_frontend(model)` returns a copy of a model whose
front end uses it (conformer's `LogMel`, whisper-ctc's `WhisperLogMel`); the weights are shared, not copied.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .whisper_encoder import HOP_LENGTH, WhisperLogMel


class DFTPowerSpectrogram(nn.Module):
    """Waveforms (B, T) -> |STFT|^2 (B, n_fft/2 + 1, frames), centred with reflect padding as `torch.stft`."""

    def __init__(self, n_fft: int, hop_length: int, window: torch.Tensor):
        super().__init__()
        if n_fft % 2 or window.numel() != n_fft:
            raise ValueError(f"n_fft {n_fft} must be even and the window {n_fft} samples ({window.numel()} given)")
        self.n_fft, self.hop_length, self.grain = n_fft, hop_length, math.gcd(n_fft, hop_length)
        half = n_fft // 2
        n = torch.arange(half + 1, dtype=torch.float64)
        angle = 2.0 * math.pi * torch.outer(n, n).remainder(n_fft) / n_fft  # (n, k): exact phase before cos/sin
        self.register_buffer("cos", angle.cos().float(), persistent=False)  # (N/2 + 1, bins)
        self.register_buffer("sin", (-angle[1:half].sin()).float(), persistent=False)  # (N/2 - 1, bins)
        self.register_buffer("window", window.detach().float().clone(), persistent=False)

    def frames(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Centred, reflect-padded, windowed frames (B, T, n_fft): `per` strided slices of `grain`-sample pieces."""
        n, hop, grain, half = self.n_fft, self.hop_length, self.grain, self.n_fft // 2
        x = F.pad(waveforms.float().unsqueeze(1), (half, half), mode="reflect")[:, 0]
        count = (x.shape[1] - n) // hop + 1
        pieces = x[:, : (count - 1) * hop + n].reshape(x.shape[0], -1, grain)
        step = hop // grain
        framed = torch.cat([pieces[:, j : j + step * (count - 1) + 1 : step] for j in range(n // grain)], -1)
        return framed * self.window

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        framed = self.frames(waveforms)
        half = self.n_fft // 2
        mid, mirrored = framed[..., 1:half], framed[..., half + 1 :].flip(-1)  # x[n] and x[N-n], n = 1..N/2-1
        even = torch.cat([framed[..., :1], mid + mirrored, framed[..., half : half + 1]], -1)
        re, im = even @ self.cos, (mid - mirrored) @ self.sin  # (B, T, bins)
        return (re * re + im * im).transpose(1, 2)


class DFTWhisperLogMel(WhisperLogMel):
    """`WhisperLogMel` with the STFT as `DFTPowerSpectrogram` and the causal floor's running maximum as a scan; the
    same log-mel, floor and scaling."""

    def __init__(self, original: WhisperLogMel):
        super().__init__(original.filters.shape[0], causal=original.causal)
        self.dft = DFTPowerSpectrogram(self.window.numel(), HOP_LENGTH, self.window)
        self.scan_steps = 13  # the causal floor without cummax (no ONNX op): 8,192 frames, past the graph's 30 s

    def power(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.dft(waveforms)[..., :-1]  # whisper drops the last frame


def dft_frontend(model: nn.Module) -> nn.Module:
    """A shallow copy of `model` whose log-mel front end computes its STFT with `DFTPowerSpectrogram`.

    Only the front-end module is new; every other module and weight is the original's. A model with neither
    front end is returned as is."""
    if isinstance(getattr(model, "log_mel", None), WhisperLogMel):  # whisper-ctc
        out = copy.copy(model)
        out._modules = dict(model._modules, log_mel=DFTWhisperLogMel(model.log_mel))
        return out
    frontend = getattr(model, "frontend", None)
    spectrogram = getattr(getattr(frontend, "mel", None), "spectrogram", None)
    if spectrogram is None or spectrogram.power != 2.0 or spectrogram.normalized or not spectrogram.center:
        return model
    if spectrogram.pad_mode != "reflect" or spectrogram.win_length != spectrogram.n_fft:
        return model
    mel = copy.copy(frontend.mel)
    mel._modules = dict(frontend.mel._modules,
                        spectrogram=DFTPowerSpectrogram(spectrogram.n_fft, spectrogram.hop_length, spectrogram.window))
    new_frontend = copy.copy(frontend)
    new_frontend._modules = dict(frontend._modules, mel=mel)
    out = copy.copy(model)
    out._modules = dict(model._modules, frontend=new_frontend)
    return out
