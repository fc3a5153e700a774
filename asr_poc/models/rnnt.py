"""RNN-T: a streaming transducer. Emformer or conformer encoder + LSTM predictor + joiner (torchaudio), rnnt_loss,
greedy decoding.

`encoder: conformer` (rnnt_conformer.py) puts the streaming conformer's layers under the transducer: trained on
random chunks and full context, it decodes with full context (`transcribe`) and streams chunk by chunk with no
look-ahead beyond the chunk. Its training step costs less CPU than the Emformer's for the same training loss step for
step, which is why it is the recipe's encoder (benchmarks/README.md, "A transducer that learns in minutes"). What
follows describes `encoder: emformer`.

The encoder (torchaudio's `emformer_rnnt_model`) stacks `time_reduction` log-mel frames into one (40 ms with the
default 10 ms hop and 4x) and runs Emformer layers over segments of `chunk_ms`, each seeing `left_context_ms` of
cached left context and `lookahead_ms` of right context. Training runs all segments of an utterance in parallel
(Emformer's block masks); streaming runs one segment per call with the same masks, so both give the same encoder
frames. Greedy decoding walks the encoder frames, emitting up to `MAX_SYMBOLS_PER_FRAME` characters per frame, and
carries the predictor's LSTM state, so it continues from one chunk to the next exactly where it stopped.

Offline and streaming see the same audio: an utterance's reduced frames are padded with silence to whole segments,
then `lookahead_ms` of silence (the last segment's right context), in both.

Training adds an auxiliary CTC loss on the encoder frames (`ctc_weight`, as in icefall/ESPnet): a transducer
trained from scratch otherwise learns its predictor (a language model) long before its encoder aligns to audio.
Options (all but the first for the conformer encoder only; measured in benchmarks/README.md, "A transducer that
learns in minutes"):
- `ctc_warmup_steps`: the first N training steps train the encoder and the CTC head alone (no predictor, joiner or
  `rnnt_loss`: a conformer-CTC step's cost), then the whole transducer. The steps are the trainer's: it passes the
  run's global optimizer step with each batch (`batch["step"]`, from 0, restored from the checkpoint on resume), so
  a resumed run continues the warm-up where it stopped. The weights record only whether a joint step has trained
  the predictor and joiner (the buffer `transducer_trained`): until then the model transcribes (and, with the
  conformer encoder, streams) with its CTC head, and a run initialised from weights past the warm-up does not warm
  up again. The warm-up leaves the predictor and joiner out of the loss, so the model says so
  (`leaves_parameters_unused`) and the trainer has DistributedDataParallel look for unused parameters.
- `ctc_head_input: encoder`: the CTC head reads the encoder's own output, as the conformer-CTC's does, instead of
  the projection to the joiner's width.
- `joiner_stride: 2`: two encoder frames are stacked into one 80-ms joiner frame (rnnt_conformer.py), so the joint
  step's (B, T, U + 1, vocab) tensor, most of a transducer step's cost, halves; the CTC head keeps the 40-ms frames,
  where CTC has room for every character.
- `ctc_warmup_full_context`: the warm-up attends over whole utterances instead of the training chunks; off by
  default, since the warm-up's CTC loss was the same either way (benchmarks/README.md, "At the 10-minute budget").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import torch
import torchaudio
import torch.nn.functional as F
from pydantic import Field, model_validator
from torchaudio.models import emformer_rnnt_model
from torchaudio.models.rnnt import RNNT, _Joiner, _Predictor

from .rnnt_conformer import SUBSAMPLING, ConformerTranscriber
from .rnnt_greedy import greedy_batch

from .features import FeatureSpec, StreamingLogMel
from .interface import BaseASRModel, PresetModelConfig

SIZES: dict[str, dict[str, int]] = {
    "xs": dict(encoder_dim=144, num_heads=4, num_layers=6, ffn_dim=576, predictor_dim=128, joiner_dim=256),  # ~1.8M
    "s": dict(encoder_dim=256, num_heads=4, num_layers=12, ffn_dim=1024, predictor_dim=256, joiner_dim=512),  # ~10M
    "m": dict(encoder_dim=384, num_heads=6, num_layers=16, ffn_dim=1536, predictor_dim=384, joiner_dim=640),  # ~30M
}
CONFORMER_SIZES: dict[str, dict[str, int]] = {  # encoder: conformer (the conformer-CTC's encoder sizes)
    "xs": dict(encoder_dim=144, num_heads=4, num_layers=4, ffn_dim=576, kernel_size=15, subsampling_channels=32,
               predictor_dim=128, joiner_dim=256),
    "s": dict(encoder_dim=256, num_heads=4, num_layers=6, ffn_dim=1024, kernel_size=31, subsampling_channels=256,
              predictor_dim=256, joiner_dim=512),
    "m": dict(encoder_dim=384, num_heads=6, num_layers=8, ffn_dim=1536, kernel_size=31, subsampling_channels=384,
              predictor_dim=384, joiner_dim=640),
}
SILENCE = -1.5  # the log-mel value of digital silence after LogMel's normalization: (log10(1e-10) + 4) / 4
MAX_SYMBOLS_PER_FRAME = 4


class RNNTConfig(PresetModelConfig):
    """`models.rnn-t`: a size preset fills every dimension left null; chunk and look-ahead set the latency."""

    predictor_dim: Optional[int] = Field(None, ge=8, le=4096)  # embedding and LSTM width
    joiner_dim: Optional[int] = Field(None, ge=8, le=4096)
    encoder: Literal["emformer", "conformer"] = "emformer"  # conformer: rnnt_conformer.py, learns sooner
    kernel_size: Optional[int] = Field(None, ge=3, le=127)  # conformer encoder: depthwise convolution
    subsampling_channels: Optional[int] = Field(None, ge=1, le=1024)  # conformer encoder: subsampling convolutions
    dynamic_chunk_training: bool = True  # conformer encoder: random chunks and full context while training
    time_reduction: Literal[2, 4, 6, 8] = 4  # emformer: log-mel frames stacked into one encoder frame
    chunk_ms: int = Field(160, ge=20, le=5000)  # streaming segment
    lookahead_ms: Optional[int] = Field(None, ge=0, le=2000)  # emformer: right context beyond each segment (null: 40)
    left_context_ms: int = Field(1280, ge=0, le=60000)  # attention's left context
    ctc_weight: float = Field(0.3, ge=0.0, lt=1.0)  # auxiliary CTC loss on the encoder: it learns to align sooner
    ctc_warmup_steps: int = Field(0, ge=0, le=10_000_000)  # first N steps: encoder + CTC head only, then the transducer
    ctc_warmup_full_context: bool = False  # conformer encoder: no chunked attention during the warm-up
    ctc_head_input: Literal["projection", "encoder"] = "projection"  # conformer encoder: what the CTC head reads,
    # the joiner-width projection or the encoder's own output (with dropout, as the conformer-CTC's head)
    joiner_stride: int = Field(1, ge=1, le=4)  # conformer encoder: encoder frames stacked into one joiner frame

    @model_validator(mode="after")
    def fill_from_size(self) -> "RNNTConfig":
        if self.ctc_warmup_steps and not self.ctc_weight:
            raise ValueError(f"ctc_warmup_steps ({self.ctc_warmup_steps}) trains the CTC head, which ctc_weight 0 "
                             "leaves out: set ctc_weight > 0 or ctc_warmup_steps 0")
        if self.encoder == "conformer":
            self.fill_from_preset(CONFORMER_SIZES)
            if self.kernel_size % 2 == 0:
                raise ValueError(f"kernel_size ({self.kernel_size}) must be odd")
            if self.lookahead_ms:
                raise ValueError(f"lookahead_ms ({self.lookahead_ms}) is the Emformer encoder's right context; the "
                                 "conformer encoder sees no frame beyond its chunk: leave it null or 0")
            if self.ctc_head_input == "encoder" and not self.ctc_weight:
                raise ValueError("ctc_head_input 'encoder' sets where the CTC head reads, and ctc_weight 0 has none")
            if self.joiner_stride > 1 and self.ctc_weight and self.ctc_head_input != "encoder":
                raise ValueError(f"joiner_stride {self.joiner_stride} makes the projection too coarse for CTC over "
                                 "characters: set ctc_head_input: encoder (the CTC head reads the 40-ms frames)")
            if self.time_reduction != SUBSAMPLING:
                raise ValueError(f"time_reduction ({self.time_reduction}) is the Emformer encoder's; the conformer "
                                 f"encoder subsamples {SUBSAMPLING}x: leave it at {SUBSAMPLING}")
            object.__setattr__(self, "lookahead_ms", 0)
            return self
        # the conformer encoder's options (on by default) mean nothing here: recorded as what the Emformer does
        object.__setattr__(self, "joiner_stride", 1)  # it stacks frames with time_reduction
        object.__setattr__(self, "ctc_head_input", "projection")
        self.fill_from_preset(SIZES)
        if self.lookahead_ms is None:
            object.__setattr__(self, "lookahead_ms", 40)
        if self.encoder_dim % self.time_reduction:
            raise ValueError(f"encoder_dim ({self.encoder_dim}) must be divisible by time_reduction "
                             f"({self.time_reduction})")
        return self

    def check_features(self, features: FeatureSpec) -> None:
        """Chunk, look-ahead and left context must be whole encoder frames of these features (the real hop)."""
        conformer = self.encoder == "conformer"
        factor = SUBSAMPLING if conformer else self.time_reduction
        frame_ms = features.hop_ms * factor
        for key in ("chunk_ms", "left_context_ms") if conformer else ("chunk_ms", "lookahead_ms", "left_context_ms"):
            frames = getattr(self, key) / frame_ms
            if abs(frames - round(frames)) > 1e-6:
                raise ValueError(f"{key} ({getattr(self, key)}) must be a multiple of {frame_ms:g} ms (the encoder's "
                                 f"frame: {features.hop_ms:g} ms features x {factor})")
        joiner_ms = frame_ms * self.joiner_stride
        if conformer and abs(self.chunk_ms / joiner_ms - round(self.chunk_ms / joiner_ms)) > 1e-6:
            raise ValueError(f"chunk_ms ({self.chunk_ms}) must be a multiple of {joiner_ms:g} ms (joiner_stride "
                             f"{self.joiner_stride} x the encoder's {frame_ms:g}-ms frame)")


@dataclass
class Hypothesis:
    """Greedy decoding state: tokens so far, the predictor's output for the last token and its LSTM state."""

    tokens: list[int] = field(default_factory=list)
    predictor_out: Optional[torch.Tensor] = None  # (D,)
    predictor_state: Optional[list[list[torch.Tensor]]] = None


class EmformerRNNT(BaseASRModel):
    """Emformer transducer over characters (the CTC blank doubles as the RNN-T blank and start symbol)."""

    name = "rnn-t"
    Config = RNNTConfig
    streaming = True

    def __init__(self, config: dict):
        super().__init__(config)
        c: RNNTConfig = self.spec.arch
        frame_ms = 1000.0 * self.features.hop_length / self.sample_rate  # 10 ms
        self.stride = c.time_reduction
        self.segment = max(1, round(c.chunk_ms / (frame_ms * self.stride)))  # encoder frames per chunk
        self.right = round(c.lookahead_ms / (frame_ms * self.stride))
        self.chunk_ms = self.segment * self.stride * frame_ms
        self.lookahead_ms = self.right * self.stride * frame_ms
        self.encoder_kind = c.encoder
        if c.encoder == "conformer":
            transcriber = ConformerTranscriber(
                c.input_dim, c.encoder_dim, c.joiner_dim, c.num_heads, c.ffn_dim, c.num_layers, c.kernel_size,
                c.subsampling_channels, c.dropout, chunk_frames=self.segment,
                left_chunks=round(c.left_context_ms / self.chunk_ms), dynamic_chunks=c.dynamic_chunk_training,
                joiner_stride=c.joiner_stride)
            predictor = _Predictor(len(self.tokenizer), c.joiner_dim, symbol_embedding_dim=c.predictor_dim,
                                   num_lstm_layers=1, lstm_hidden_dim=c.predictor_dim, lstm_layer_norm=True,
                                   lstm_layer_norm_epsilon=1e-5, lstm_dropout=c.dropout)
            self.model = RNNT(transcriber, predictor, _Joiner(c.joiner_dim, len(self.tokenizer)))
        else:
            self.model = self._emformer(c)
        self.blank = self.tokenizer.blank_id
        self.ctc_weight = c.ctc_weight
        self.ctc_from_encoder = c.encoder == "conformer" and c.ctc_head_input == "encoder"
        ctc_width = c.encoder_dim if self.ctc_from_encoder else c.joiner_dim
        self.ctc_head = torch.nn.Linear(ctc_width, len(self.tokenizer)) if c.ctc_weight > 0 else None
        self.ctc_dropout = torch.nn.Dropout(c.dropout if self.ctc_from_encoder else 0.0)
        self.ctc_warmup_steps, self.ctc_warmup_full_context = c.ctc_warmup_steps, c.ctc_warmup_full_context
        # whether a joint training step has trained the predictor and joiner: a fact about these weights, saved with
        # them, because decoding depends on it (the CTC head decodes until then) and a run initialised from weights
        # past the warm-up must not warm up again. How many steps the warm-up lasts is the trainer's count.
        self.register_buffer("transducer_trained", torch.tensor(c.ctc_warmup_steps == 0))
        self._stream_features: Optional[StreamingLogMel] = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Older checkpoints counted training steps in the buffer `trained_steps` (past the warm-up once it reached
        # ctc_warmup_steps); those from before that counter trained the whole transducer from their first step.
        old_count = state_dict.pop(prefix + "trained_steps", None)
        if prefix + "transducer_trained" not in state_dict:
            trained = old_count is None or int(old_count) >= self.ctc_warmup_steps
            state_dict[prefix + "transducer_trained"] = torch.tensor(trained)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def warming_up(self) -> bool:
        """True while the predictor and joiner have not trained (with `ctc_warmup_steps` > 0, until the first joint
        training step): the model then transcribes and streams with its CTC head."""
        return not bool(self.transducer_trained)

    def warmup_step(self, step: Optional[int]) -> bool:
        """Whether a training step at the run's global optimizer step `step` (from 0, the trainer's `batch["step"]`)
        trains the encoder and the CTC head alone: one of the first `ctc_warmup_steps`, on weights whose transducer
        has not trained yet. Without a step (a forward outside the trainer) the warm-up lasts as long as the
        transducer has not trained: a hand-written loop passes `batch["step"]` to end it."""
        if self.ctc_warmup_steps == 0 or (step is not None and step >= self.ctc_warmup_steps):
            return False  # no device sync per step once the warm-up is over
        return self.warming_up

    @property
    def leaves_parameters_unused(self) -> bool:
        """Whether training steps to come leave parameters out of the loss: the warm-up's leave the predictor, the
        joiner and (with `ctc_head_input: encoder`) the projection to the joiner. The trainer then builds
        DistributedDataParallel with `find_unused_parameters`, so that every rank reduces the same gradients."""
        return self.warming_up

    def _emformer(self, c: RNNTConfig) -> RNNT:
        frame_ms = 1000.0 * self.features.hop_length / self.sample_rate
        return emformer_rnnt_model(
            input_dim=c.input_dim, encoding_dim=c.joiner_dim, num_symbols=len(self.tokenizer),
            segment_length=self.segment * self.stride, right_context_length=self.right * self.stride,
            time_reduction_input_dim=c.encoder_dim // self.stride, time_reduction_stride=self.stride,
            transformer_num_heads=c.num_heads, transformer_ffn_dim=c.ffn_dim, transformer_num_layers=c.num_layers,
            transformer_dropout=c.dropout, transformer_activation="gelu",
            transformer_left_context_length=round(c.left_context_ms / (frame_ms * self.stride)),
            transformer_max_memory_size=0, transformer_weight_init_scale_strategy="depthwise",
            transformer_tanh_on_mem=False, symbol_embedding_dim=c.predictor_dim, num_lstm_layers=1,
            lstm_layer_norm=True, lstm_layer_norm_epsilon=1e-5, lstm_dropout=c.dropout,
        )

    # --- encoder -----------------------------------------------------------------------------------------------
    def _pad_features(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut frames that do not fill an encoder frame, pad with silence to whole segments plus the right context."""
        frames = feats.shape[1] // self.stride
        segments = max(1, -(-frames // self.segment))
        target = (segments * self.segment + self.right) * self.stride
        feats = feats[:, : frames * self.stride]
        pad = feats.new_full((feats.shape[0], target - feats.shape[1], feats.shape[2]), SILENCE)
        return torch.cat([feats, pad], dim=1), lengths.clamp(max=frames * self.stride)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor, chunked: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms (B, T) -> encoder frames (B, frames, joiner_dim) and their lengths (all segments at once).
        The conformer encoder trains on chunks (`chunked`: dynamic or fixed) and decodes with full context."""
        enc, enc_lengths, _, _ = self._encode(waveforms, lengths, chunked)
        return enc, enc_lengths

    def _encode(self, waveforms: torch.Tensor, lengths: torch.Tensor, chunked: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`encode`, plus what the CTC head reads and its lengths: the joiner frames themselves, or with
        `ctc_head_input: encoder` the encoder's own 40-ms frames (before `joiner_stride` stacks them)."""
        feats, feat_lengths = self.frontend(waveforms, lengths)
        if self.encoder_kind == "conformer":
            transcriber = self.model.transcriber
            chunk = transcriber.training_chunk() if self.training and chunked else None
            hidden, hidden_lengths = transcriber.hidden(feats, feat_lengths, chunk)
            enc, enc_lengths = transcriber.project(hidden, hidden_lengths)
            if self.ctc_from_encoder:
                return enc, enc_lengths, hidden, hidden_lengths
            return enc, enc_lengths, enc, enc_lengths
        feats, feat_lengths = self._pad_features(feats, feat_lengths)
        out, _ = self.model.transcribe(feats, feat_lengths)
        out_lengths = feat_lengths // self.stride
        return out, out_lengths, out, out_lengths

    def ctc_head_logits(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The auxiliary CTC head's logits (B, frames, vocab) and frame lengths, full context."""
        _, _, ctc_input, ctc_lengths = self._encode(waveforms, lengths, chunked=False)
        return self.ctc_head(ctc_input), ctc_lengths

    def forward(self, batch: dict) -> torch.Tensor:
        """The loss of `batch` (`collate_fn`'s). In a training step (train mode, gradients on) the trainer's
        `batch["step"]` decides whether it is a CTC warm-up step (`warmup_step`)."""
        device = self.device
        training_step = self.training and torch.is_grad_enabled()
        warmup = training_step and self.warmup_step(batch.get("step"))
        enc, enc_lengths, ctc_input, ctc_lengths = self._encode(
            batch["waveforms"].to(device), batch["waveform_lengths"].to(device),
            chunked=not (warmup and self.ctc_warmup_full_context))
        enc = enc[:, : int(enc_lengths.max())]  # rnnt_loss wants the longest utterance to fill the frames
        ctc_input = self.ctc_dropout(ctc_input[:, : int(ctc_lengths.max())])
        tokens, token_lengths = batch["tokens"].to(device), batch["token_lengths"].to(device)
        if warmup:
            return self._ctc_loss(self.ctc_head(ctc_input), ctc_lengths, tokens, token_lengths)
        if training_step and self.ctc_warmup_steps:
            self.transducer_trained.fill_(True)  # this step trains the predictor and joiner: decode with them now
        start = torch.full_like(tokens[:, :1], self.blank)
        pred, _, _ = self.model.predict(torch.cat([start, tokens], dim=1), token_lengths + 1, None)
        logits, _, _ = self.model.join(enc, enc_lengths, pred, token_lengths + 1)  # (B, T, U + 1, vocab)
        losses = torchaudio.functional.rnnt_loss(
            logits.float(), tokens.int(), enc_lengths.int(), token_lengths.int(), blank=self.blank, reduction="none")
        loss = (losses / token_lengths.clamp(min=1)).mean()  # per character, like CTC's "mean"
        if self.ctc_head is None:
            return loss
        ctc = self._ctc_loss(self.ctc_head(ctc_input), ctc_lengths, tokens, token_lengths)
        return (1 - self.ctc_weight) * loss + self.ctc_weight * ctc

    def _ctc_loss(self, logits: torch.Tensor, enc_lengths: torch.Tensor, tokens: torch.Tensor,
                  token_lengths: torch.Tensor) -> torch.Tensor:
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        return F.ctc_loss(log_probs, tokens, enc_lengths, token_lengths, blank=self.blank, zero_infinity=True)

    # --- greedy decoding ---------------------------------------------------------------------------------------
    def _predict(self, token: int, hyp: Hypothesis) -> None:
        x = torch.tensor([[token]], device=self.device)
        out, _, hyp.predictor_state = self.model.predict(x, torch.tensor([1], device=self.device),
                                                         hyp.predictor_state)
        hyp.predictor_out = out[0, 0]

    def greedy(self, enc: torch.Tensor, hyp: Optional[Hypothesis] = None) -> Hypothesis:
        """Extend `hyp` over encoder frames (T, D): at each frame emit characters until the joiner says blank."""
        if hyp is None:
            hyp = Hypothesis()
            self._predict(self.blank, hyp)
        joiner = self.model.joiner
        for frame in enc:
            for _ in range(MAX_SYMBOLS_PER_FRAME):
                token = int(joiner.linear(joiner.activation(frame + hyp.predictor_out)).argmax())
                if token == self.blank:
                    break
                hyp.tokens.append(token)
                self._predict(token, hyp)
        return hyp

    @torch.inference_mode()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy search over the whole batch at once (`rnnt_greedy.py`); during the CTC warm-up, whose joiner has
        not trained yet, greedy CTC with the CTC head (what the warm-up's evaluations should measure, at a CTC
        decode's cost)."""
        if self.warming_up:
            return self.tokenizer.decode_ctc_batch(*self.ctc_head_logits(waveforms.to(self.device),
                                                                         lengths.to(self.device)))
        enc, enc_lengths = self.encode(waveforms.to(self.device), lengths.to(self.device))
        return [self.tokenizer.decode(ids) for ids in greedy_batch(self.model, enc, enc_lengths, self.blank,
                                                                   MAX_SYMBOLS_PER_FRAME)]

    # --- streaming ---------------------------------------------------------------------------------------------
    def init_stream_state(self) -> dict[str, Any]:
        if self._stream_features is None:
            self._stream_features = StreamingLogMel(self.frontend)
        if self.encoder_kind == "conformer":
            return {"features": self._stream_features.init_state(), "encoder": self.model.transcriber.init_state(),
                    "hyp": None, "ctc_tokens": [], "ctc_last": self.blank}
        return {"features": self._stream_features.init_state(), "frames": None, "encoder": None, "hyp": None}

    @torch.inference_mode()
    def stream_step(self, samples: torch.Tensor, state: dict, final: bool = False) -> tuple[str, dict]:
        """Run the encoder on every segment whose look-ahead has arrived (at `final`, pad the rest with silence)."""
        feats = self._stream_features(samples, state["features"], final).to(self.device)
        if self.encoder_kind == "conformer" and self.warming_up:  # greedy CTC with the CTC head, as `transcribe`
            transcriber = self.model.transcriber
            stream = transcriber.stream_hidden if self.ctc_from_encoder else transcriber.stream
            ids = self.ctc_head(stream(feats, state["encoder"], final)).argmax(-1).tolist()
            state["ctc_last"] = self.tokenizer.extend_ctc(ids, state["ctc_tokens"], state["ctc_last"])
            return self.tokenizer.decode(state["ctc_tokens"]), state
        if self.encoder_kind == "conformer":
            enc = self.model.transcriber.stream(feats, state["encoder"], final)
            if len(enc) or state["hyp"] is None:
                state["hyp"] = self.greedy(enc, state["hyp"])
            return self.tokenizer.decode(state["hyp"].tokens), state
        frames = feats if state["frames"] is None else torch.cat([state["frames"], feats])
        step, window = self.segment * self.stride, (self.segment + self.right) * self.stride
        if final:  # as `_pad_features`: whole encoder frames, then silence up to whole segments + right context
            usable = frames.shape[0] // self.stride * self.stride
            segments = -(-usable // step)
            target = segments * step + self.right * self.stride
            frames = torch.cat([frames[:usable], frames.new_full((target - usable, frames.shape[1]), SILENCE)])
        while frames.shape[0] >= window:
            valid = min(step, usable - (target - frames.shape[0])) if final else step  # real frames in this segment
            enc, _, state["encoder"] = self.model.transcribe_streaming(
                frames[None, :window], torch.tensor([window], device=self.device), state["encoder"])
            state["hyp"] = self.greedy(enc[0, : valid // self.stride], state["hyp"])
            frames = frames[step:]
        state["frames"] = frames
        hyp = state["hyp"]
        return ("" if hyp is None else self.tokenizer.decode(hyp.tokens)), state


MODEL = EmformerRNNT
