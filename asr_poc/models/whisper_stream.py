"""Whisper's encoder one chunk at a time: the pieces a streaming whisper-ctc (`whisper_ctc.py`) runs while a person
speaks, each giving exactly the frames that the chunked pass over the whole utterance gives.

- `StreamingWhisperLogMel`: whisper's log-mel frames as their windows complete (centred STFT, reflect padding at
  both ends, the last frame dropped as whisper does), with the causal floor (`whisper_encoder.causal_floor`): a frame is floored
  8 below the loudest bin heard so far, not the utterance's loudest, which no stream can know.
- `stream_conv`: a convolution (kernel 3, padding 1, stride 1 or 2) + GELU over new frames, holding back the
  input frames its next output still needs.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .features import add_centred_samples
from .whisper_encoder import FLOOR, HOP_LENGTH, N_FFT


class StreamingWhisperLogMel:
    """Log-mel frames (frames, n_mels) of a stream, equal to `WhisperLogMel(causal=True)` on the whole."""

    def __init__(self, filters: torch.Tensor, window: torch.Tensor):
        self.filters, self.window = filters.cpu(), window.cpu()
        self.pad = N_FFT // 2

    @staticmethod
    def init_state() -> dict:
        return {"pending": torch.zeros(0), "tail": torch.zeros(0), "started": False, "received": 0, "emitted": 0,
                "loudest": float("-inf")}

    def __call__(self, samples: torch.Tensor, state: dict, final: bool = False) -> torch.Tensor:
        state["received"] += samples.numel()
        add_centred_samples(samples, state, self.pad, final)
        pending = state["pending"]
        n = (pending.numel() - N_FFT) // HOP_LENGTH + 1 if state["started"] and pending.numel() >= N_FFT else 0
        if final:  # whisper keeps received // hop frames (it drops the centred STFT's last one)
            n = min(n, state["received"] // HOP_LENGTH - state["emitted"])
        if n <= 0:
            return torch.zeros(0, self.filters.shape[0])
        stft = torch.stft(pending[: (n - 1) * HOP_LENGTH + N_FFT], N_FFT, HOP_LENGTH, window=self.window,
                          center=False, return_complex=True)
        state["pending"] = pending[n * HOP_LENGTH :]
        state["emitted"] += n
        log_spec = (self.filters @ stft.abs() ** 2).clamp_min(1e-10).log10()  # (n_mels, n)
        loudest = torch.cummax(log_spec.amax(0), 0).values.clamp_min(state["loudest"])
        state["loudest"] = float(loudest[-1])
        return ((torch.maximum(log_spec, loudest - FLOOR) + 4.0) / 4.0).T


def stream_conv(conv: nn.Conv1d, x: torch.Tensor, pending: Optional[torch.Tensor], final: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """GELU(conv(x)) for new input frames x (1, C, T) of a kernel-3, padding-1 convolution: the outputs they complete
    and the input frames kept for the next call (`pending`, starting as the one zero frame of left padding)."""
    if pending is None:
        pending = x.new_zeros(1, conv.in_channels, 1)
    buf = torch.cat([pending, x] + ([x.new_zeros(1, conv.in_channels, 1)] if final else []), dim=2)
    stride = conv.stride[0]
    n = max(0, (buf.shape[2] - 3) // stride + 1)
    if n == 0:
        return x.new_zeros(1, conv.out_channels, 0), buf
    out = F.conv1d(buf[:, :, : (n - 1) * stride + 3], conv.weight, conv.bias, stride=stride)
    return F.gelu(out), buf[:, :, n * stride :]
