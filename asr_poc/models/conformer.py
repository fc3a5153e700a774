"""Conformer-CTC: convolutional subsampling (4x or 8x) + a conformer encoder (`streaming.py`) + a linear CTC head.

Log-mel features are computed inside the model, on its device. Decoding is greedy CTC: one argmax pass,
no beam search and no language model, which is what makes it fast.

Streaming mode (`streaming_chunk_ms` set; off by default, which keeps the full-context model unchanged): the
same layers run with a chunked attention mask (each frame sees its own chunk
and `left_chunks` chunks before it, never the future) and a causal depthwise convolution, as in WeNet's U2 and
icefall's streaming conformers. With `dynamic_chunk_training`, each training batch draws its chunk size: full
context half the time, else 1-25 frames, so one model serves full-context decoding (`transcribe`) and streaming
(`stream_step`, chunk by chunk with cached left context). The conv subsampling looks 3 (4x) or 7 (8x) feature
frames ahead of its output frame: that ends within the chunk's last hop, so the only look-ahead beyond a chunk is
the STFT window's (`frontend_delay_ms`, 2.5 ms at 16 kHz).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from .features import FeatureSpec, StreamingLogMel
from .interface import BaseASRModel, PresetModelConfig
from .spec import ModelSpec
from .streaming import ConformerEncoder

SIZES: dict[str, dict[str, int]] = {
    # xs: 32 subsampling channels, not 144: the convolutions took half of the decoding time (benchmarks/results)
    "xs": dict(encoder_dim=144, num_heads=4, num_layers=4, ffn_dim=576, kernel_size=15, subsampling_channels=32),
    "s": dict(encoder_dim=256, num_heads=4, num_layers=6, ffn_dim=1024, kernel_size=31, subsampling_channels=256),
    "m": dict(encoder_dim=384, num_heads=6, num_layers=8, ffn_dim=1536, kernel_size=31, subsampling_channels=384),
}
DYNAMIC_MAX_CHUNK = 25  # dynamic chunk training draws chunks of 1..25 encoder frames (WeNet's choice)


class ConformerConfig(PresetModelConfig):
    """`models.conformer`: a size preset fills every dimension left null."""

    kernel_size: Optional[int] = Field(None, ge=3, le=127)
    subsampling: Literal[4, 8] = 4
    subsampling_channels: Optional[int] = Field(None, ge=1, le=1024)  # channels of the subsampling convolutions
    streaming_chunk_ms: Optional[int] = Field(None, ge=40, le=5000)  # null: full context, no streaming
    left_chunks: Optional[int] = Field(8, ge=0, le=1000)  # chunks of left context in streaming (null: all)
    dynamic_chunk_training: bool = True  # train on random chunk sizes (and full context) so one model does both

    @model_validator(mode="after")
    def fill_from_size(self) -> "ConformerConfig":
        self.fill_from_preset(SIZES)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size ({self.kernel_size}) must be odd")
        return self

    def check_features(self, features: FeatureSpec) -> None:
        frame_ms = features.hop_ms * self.subsampling
        frames = None if self.streaming_chunk_ms is None else self.streaming_chunk_ms / frame_ms
        if frames is not None and abs(frames - round(frames)) > 1e-6:
            raise ValueError(f"streaming_chunk_ms ({self.streaming_chunk_ms}) must be a multiple of {frame_ms:g} ms "
                             f"(the encoder's frame: {features.hop_ms:g} ms features x subsampling {self.subsampling})")


@dataclass(frozen=True)
class ConformerSpec(ModelSpec):
    """The conformer-CTC's spec: its `arch` is a `ConformerConfig`."""

    arch: ConformerConfig


class ConvSubsampling(nn.Module):
    """Stacked stride-2 3x3 convolutions over (time, mel): 2 layers for 4x, 3 for 8x, then a projection."""

    def __init__(self, input_dim: int, output_dim: int, factor: int = 4, conv_channels: Optional[int] = None):
        super().__init__()
        conv_channels = conv_channels or output_dim
        layers, channels, freq = [], 1, input_dim
        for _ in range({4: 2, 8: 3}[factor]):
            layers += [nn.Conv2d(channels, conv_channels, kernel_size=3, stride=2, padding=1), nn.SiLU()]
            channels, freq = conv_channels, (freq - 1) // 2 + 1
        self.conv = nn.Sequential(*layers)
        self.layers = len(layers) // 2
        self.proj = nn.Linear(conv_channels * freq, output_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in range(self.layers):
            lengths = (lengths - 1) // 2 + 1
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        return self._project(x), self.output_lengths(lengths)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, t, c * f))

    def stream(self, x: torch.Tensor, pending: list, final: bool = False) -> torch.Tensor:
        """New feature frames (1, T, F) -> the output frames they complete; `pending[i]` holds layer i's unused input.

        Gives exactly `forward`'s frames: each layer's zero padding is one zero frame before the first input frame
        and, at `final`, one after the last.
        """
        x = x.unsqueeze(1)  # (1, 1, T, F)
        for i in range(self.layers):
            conv, act = self.conv[2 * i], self.conv[2 * i + 1]
            if pending[i] is None:
                pending[i] = x.new_zeros(1, conv.in_channels, 1, x.shape[-1])
            buf = torch.cat([pending[i], x] + ([torch.zeros_like(pending[i][:, :, :1])] if final else []), dim=2)
            n = max(0, (buf.shape[2] - 3) // 2 + 1)
            pending[i] = buf[:, :, 2 * n :]
            x = act(F.conv2d(buf[:, :, : 2 * n + 1], conv.weight, conv.bias, stride=2, padding=(0, 1))) if n else \
                x.new_zeros(1, conv.out_channels, 0, (x.shape[-1] - 1) // 2 + 1)
        return self._project(x)


class ConformerCTC(BaseASRModel):
    """Conformer encoder with a CTC head over characters."""

    name = "conformer"
    Config = ConformerConfig
    Spec = ConformerSpec

    def __init__(self, spec: ConformerSpec | dict):
        super().__init__(spec)
        c: ConformerConfig = self.spec.arch
        self.subsampling = ConvSubsampling(c.input_dim, c.encoder_dim, c.subsampling, c.subsampling_channels)
        self.encoder = ConformerEncoder(c.encoder_dim, c.num_heads, c.ffn_dim, c.num_layers, c.kernel_size, c.dropout)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.encoder_dim, len(self.tokenizer))
        # streaming mode: chunks of `chunk_frames` encoder frames
        self.streaming = c.streaming_chunk_ms is not None
        self.left_chunks, self.dynamic_chunks = c.left_chunks, c.dynamic_chunk_training
        frame_ms = 1000.0 * self.features.hop_length * c.subsampling / self.sample_rate
        self.chunk_frames = max(1, round(c.streaming_chunk_ms / frame_ms)) if self.streaming else None
        self.chunk_ms = self.chunk_frames * frame_ms if self.streaming else 0.0
        self.lookahead_ms = 0.0  # the subsampling's look-ahead ends inside the chunk (see the module docstring)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor, chunk: Optional[int] = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms (B, T) -> CTC logits (B, frames, vocab) and frame lengths.

        In streaming mode `chunk` (encoder frames) limits attention as streaming does; None is full context.
        """
        feats, feat_lengths = self.frontend(waveforms, lengths)
        x, x_lengths = self.subsampling(feats, feat_lengths)
        x_lengths = x_lengths.clamp(max=x.shape[1])
        x = self.encoder(x, x_lengths, chunk, self.left_chunks, causal=self.streaming)
        return self.head(self.dropout(x)), x_lengths

    def training_chunk(self) -> Optional[int]:
        """The chunk size of a training batch: dynamic (full context half the time, else 1-25 frames) or fixed."""
        if not self.dynamic_chunks:
            return self.chunk_frames
        if torch.rand(()) < 0.5:
            return None
        return int(torch.randint(1, DYNAMIC_MAX_CHUNK + 1, ()))

    def forward(self, batch: dict) -> torch.Tensor:
        device = self.device
        chunk = self.training_chunk() if self.streaming else None
        logits, lengths = self.encode(batch["waveforms"].to(device), batch["waveform_lengths"].to(device), chunk)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (frames, B, vocab)
        return F.ctc_loss(log_probs, batch["tokens"].to(device), lengths, batch["token_lengths"].to(device),
                          blank=self.tokenizer.blank_id, reduction="mean", zero_infinity=True)

    @torch.inference_mode()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor, chunk: Optional[int] = None) -> list[str]:
        """Greedy CTC; a streaming-mode model uses full context unless `chunk` (encoder frames) is given."""
        logits, out_lengths = self.encode(waveforms.to(self.device), lengths.to(self.device), chunk)
        return self.tokenizer.decode_ctc_batch(logits, out_lengths)

    # --- streaming ---------------------------------------------------------------------------------------------
    def init_stream_state(self) -> dict[str, Any]:
        if not self.streaming:
            return super().init_stream_state()
        if getattr(self, "_stream_features", None) is None:
            self._stream_features = StreamingLogMel(self.frontend)
        return {"features": self._stream_features.init_state(), "subsampling": [None] * self.subsampling.layers,
                "frames": None, "encoder": self.encoder.init_state(), "last": self.tokenizer.blank_id, "tokens": [],
                "position": 0}  # encoder frames encoded so far

    @torch.inference_mode()
    def stream_step(self, samples: torch.Tensor, state: dict, final: bool = False) -> tuple[str, dict]:
        """Encode every complete chunk (at `final`, also the last partial one) and extend the greedy CTC text."""
        feats = self._stream_features(samples, state["features"], final).to(self.device)
        x = self.subsampling.stream(feats.unsqueeze(0), state["subsampling"], final)
        frames = x if state["frames"] is None else torch.cat([state["frames"], x], dim=1)
        while frames.shape[1] >= self.chunk_frames or (final and frames.shape[1] > 0):
            chunk, frames = frames[:, : self.chunk_frames], frames[:, self.chunk_frames :]
            keep = None if self.left_chunks is None else self.left_chunks * self.chunk_frames
            chunk = self.encoder.stream(chunk, state["encoder"], keep)
            state["position"] += chunk.shape[1]
            state["last"] = self.tokenizer.extend_ctc(self.head(chunk)[0].argmax(-1).tolist(), state["tokens"],
                                                      state["last"])
        state["frames"] = frames
        return self.tokenizer.decode(state["tokens"]), state


MODEL = ConformerCTC
