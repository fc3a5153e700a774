"""Conformer-CTC: convolutional subsampling (4x or 8x) + torchaudio's Conformer encoder + a linear CTC head.

Log-mel features are computed inside the model, on its device. Decoding is greedy CTC: one argmax pass,
no beam search and no language model, which is what makes it fast.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torchaudio.models import Conformer

from .interface import BaseASRModel, ModelConfig

SIZES: dict[str, dict[str, int]] = {
    "xs": dict(encoder_dim=144, num_heads=4, num_layers=4, ffn_dim=576, kernel_size=15),  # ~2.5M parameters
    "s": dict(encoder_dim=256, num_heads=4, num_layers=6, ffn_dim=1024, kernel_size=31),  # ~10M
    "m": dict(encoder_dim=384, num_heads=6, num_layers=8, ffn_dim=1536, kernel_size=31),  # ~30M
}


class ConformerConfig(ModelConfig):
    """`models.conformer`: a size preset fills every dimension left null."""

    size: Literal["xs", "s", "m"] = "xs"
    input_dim: int = Field(80, ge=8, le=512)
    encoder_dim: Optional[int] = Field(None, ge=16, le=2048)
    num_heads: Optional[int] = Field(None, ge=1, le=32)
    num_layers: Optional[int] = Field(None, ge=1, le=48)
    ffn_dim: Optional[int] = Field(None, ge=16, le=16384)
    kernel_size: Optional[int] = Field(None, ge=3, le=127)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    subsampling: Literal[4, 8] = 4

    @model_validator(mode="after")
    def fill_from_size(self) -> "ConformerConfig":
        for key, value in SIZES[self.size].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.encoder_dim % self.num_heads:
            raise ValueError(f"encoder_dim ({self.encoder_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size ({self.kernel_size}) must be odd")
        return self


class ConvSubsampling(nn.Module):
    """Stacked stride-2 3x3 convolutions over (time, mel): 2 layers for 4x, 3 for 8x, then a projection."""

    def __init__(self, input_dim: int, output_dim: int, factor: int = 4):
        super().__init__()
        layers, channels, freq = [], 1, input_dim
        for _ in range({4: 2, 8: 3}[factor]):
            layers += [nn.Conv2d(channels, output_dim, kernel_size=3, stride=2, padding=1), nn.SiLU()]
            channels, freq = output_dim, (freq - 1) // 2 + 1
        self.conv = nn.Sequential(*layers)
        self.layers = len(layers) // 2
        self.proj = nn.Linear(output_dim * freq, output_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in range(self.layers):
            lengths = (lengths - 1) // 2 + 1
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, t, c * f)), self.output_lengths(lengths)


class ConformerCTC(BaseASRModel):
    """Conformer encoder with a CTC head over characters."""

    name = "conformer"
    Config = ConformerConfig

    def __init__(self, config: dict):
        super().__init__(config)
        c = ConformerConfig.model_validate({k: v for k, v in config.items() if k in ConformerConfig.model_fields})
        self.subsampling = ConvSubsampling(c.input_dim, c.encoder_dim, c.subsampling)
        self.encoder = Conformer(
            input_dim=c.encoder_dim, num_heads=c.num_heads, ffn_dim=c.ffn_dim, num_layers=c.num_layers,
            depthwise_conv_kernel_size=c.kernel_size, dropout=c.dropout,
        )
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.encoder_dim, len(self.tokenizer))

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms (B, T) -> CTC logits (B, frames, vocab) and frame lengths."""
        feats, feat_lengths = self.frontend(waveforms, lengths)
        x, x_lengths = self.subsampling(feats, feat_lengths)
        x_lengths = x_lengths.clamp(max=x.shape[1])
        x, x_lengths = self.encoder(x, x_lengths)
        return self.head(self.dropout(x)), x_lengths

    def forward(self, batch: dict) -> torch.Tensor:
        device = self.device
        logits, lengths = self.encode(batch["waveforms"].to(device), batch["waveform_lengths"].to(device))
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (frames, B, vocab)
        return F.ctc_loss(log_probs, batch["tokens"].to(device), lengths, batch["token_lengths"].to(device),
                          blank=self.tokenizer.blank_id, reduction="mean", zero_infinity=True)

    @torch.inference_mode()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        logits, out_lengths = self.encode(waveforms.to(self.device), lengths.to(self.device))
        best = logits.argmax(-1).cpu()
        return [self.tokenizer.decode_ctc(best[i, : int(n)].tolist()) for i, n in enumerate(out_lengths.cpu())]


MODEL = ConformerCTC
