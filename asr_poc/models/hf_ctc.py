"""hf-ctc: fine-tune a pretrained Hugging Face CTC model (wav2vec2, HuBERT, WavLM, ...) with the same trainer.

`models.hf-ctc.pretrained` names a hub id (`facebook/wav2vec2-base-960h`) or a local folder written by
`save_pretrained`. The model comes from `transformers.AutoModelForCTC`, the waveform normalization from the
folder's own feature extractor (`AutoFeatureExtractor`; a default `Wav2Vec2FeatureExtractor` when it has none),
and the vocabulary from its own tokenizer when that spells English letters; otherwise the corpus's character
vocabulary (`CharTokenizer`) is used and the CTC head is replaced by a new one of that size.

A checkpoint is plain data and self-contained: the HF config (`config.to_dict()`), the feature-extractor settings
and the vocabulary's special tokens sit in the spec's `extra` (`ModelSpec`), the vocabulary in its `vocab`, so
`BaseASRModel.from_checkpoint` rebuilds the model with no hub access (`AutoConfig.for_model` +
`AutoModelForCTC.from_config`). The model does not stream: `Transcriber` re-decodes the buffered audio instead.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ..paths import resolve_path
from ..text import CharTokenizer, normalize_text
from .features import FeatureSpec
from .interface import BaseASRModel
from .spec import ModelSpec

LETTERS = set("abcdefghijklmnopqrstuvwxyz")  # a pretrained vocabulary must spell these (in either case) to be used


class HFCTCConfig(BaseModel):
    """`models.hf-ctc`."""

    model_config = ConfigDict(extra="forbid")
    pretrained: Optional[str] = Field(None, validate_default=True)  # hub id or save_pretrained folder
    freeze_feature_encoder: bool = True  # keep the convolutional waveform encoder as pretrained
    head_learning_rate: Optional[float] = Field(None, gt=0, le=1)  # CTC head's own rate (null: training's)
    sample_rate: int = Field(16000, ge=4000, le=192000)  # the rate the pretrained model was trained at

    @field_validator("pretrained")
    @classmethod
    def _required(cls, value: Optional[str]) -> str:
        if not value or not value.strip():
            raise ValueError("set it to a hub id (e.g. facebook/wav2vec2-base-960h) or a folder written by "
                             "save_pretrained")
        return value.strip()


@dataclass(frozen=True)
class HFCTCSpec(ModelSpec):
    """hf-ctc's spec: `arch` is an `HFCTCConfig`; `extra` holds `hf_config`, `feature_extractor` and `tokenizer` (the
    pretrained model's, as plain data) once built, so a checkpoint rebuilds it with no hub access."""

    arch: HFCTCConfig


class PretrainedVocabTokenizer(CharTokenizer):
    """A pretrained model's own CTC character vocabulary behind `CharTokenizer`'s interface.

    Any blank id (the tokenizer's pad token) and either letter case: texts are normalized as everywhere
    (`normalize_text`), upper-cased for an upper-case vocabulary, and decoded back to lower case.
    """

    def __init__(self, vocab: dict[str, int], special_tokens: dict[str, str], upper_case: bool):
        self.vocab = dict(vocab)
        self.special_tokens = dict(special_tokens)
        self.upper_case = upper_case

    @classmethod
    def from_pretrained(cls, tokenizer: Any) -> Optional["PretrainedVocabTokenizer"]:
        """The tokenizer of a pretrained folder, or None when it does not spell English letters."""
        vocab = {str(k): int(v) for k, v in tokenizer.get_vocab().items()}
        special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        if special.get("pad_token") not in vocab:
            return None
        upper = LETTERS <= {s.lower() for s in vocab if s.isupper()}
        if not upper and not LETTERS <= set(vocab):
            return None
        return cls(vocab, special, upper)

    def to_dict(self) -> dict:
        return {"special_tokens": self.special_tokens, "upper_case": self.upper_case}

    @cached_property
    def _hf(self):
        from transformers import Wav2Vec2CTCTokenizer

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vocab.json"
            path.write_text(json.dumps(self.vocab))
            return Wav2Vec2CTCTokenizer(str(path), do_lower_case=False, **self.special_tokens)

    @property
    def blank_id(self) -> int:
        return self.vocab[self.special_tokens["pad_token"]]

    def encode(self, text: str) -> list[int]:
        text = normalize_text(text)
        return self._hf(text.upper() if self.upper_case else text).input_ids

    def decode(self, ids) -> str:
        return normalize_text(super().decode(ids))


class PretrainedNotFound(ValueError):
    """`pretrained` cannot be loaded; the message is one line."""


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)[:200]


def load_pretrained(source: str) -> tuple[nn.Module, Optional[Any], Optional[Any]]:
    """(AutoModelForCTC in float32, its feature extractor or None, its tokenizer or None) from a hub id or folder."""
    from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer

    folder = resolve_path(source)
    where = str(folder) if folder.is_dir() else source
    try:
        model = AutoModelForCTC.from_pretrained(where, dtype=torch.float32)
    except Exception as err:
        if folder.is_dir():
            reason = f"cannot load a CTC model from this folder ({_first_line(err)})"
        elif os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            reason = "not a local folder, and not in the Hugging Face cache (HF_HUB_OFFLINE is set: no hub access)"
        else:
            reason = f"not a local folder, and not loadable from the hub ({_first_line(err)})"
        raise PretrainedNotFound(f"models.hf-ctc.pretrained = {source!r}: {reason}") from None
    if not hasattr(model, "_get_feat_extract_output_lengths") or not isinstance(getattr(model, "lm_head", None),
                                                                                nn.Linear):
        raise PretrainedNotFound(f"models.hf-ctc.pretrained = {source!r}: {type(model).__name__} is not a waveform "
                                 f"CTC model with a linear head (wav2vec2, HuBERT, WavLM, data2vec-audio, SEW ...)")
    try:
        extractor = AutoFeatureExtractor.from_pretrained(where)
    except Exception:  # a folder with weights only (e.g. a pretraining checkpoint)
        extractor = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
    except Exception:  # no vocab.json: the corpus's vocabulary is used
        tokenizer = None
    return model, extractor, tokenizer


def _feature_extractor(settings: dict):
    """Rebuild a feature extractor from its `to_dict()` (offline)."""
    import transformers

    cls = getattr(transformers, settings.get("feature_extractor_type", ""), None) or transformers.Wav2Vec2FeatureExtractor
    return cls.from_dict(settings)


class HFCTC(BaseASRModel):
    """A pretrained `AutoModelForCTC` fine-tuned on our corpora; greedy CTC decoding."""

    name = "hf-ctc"
    Config = HFCTCConfig
    Spec = HFCTCSpec
    legacy_extra_keys = ("hf_config", "feature_extractor", "tokenizer")
    window_seconds: float = 30.0  # longer audio is decoded window by window: attention memory grows as length^2
    context_seconds: float = 2.5  # each window's extra audio on either side, whose frames are dropped

    def __init__(self, spec: HFCTCSpec | dict):
        # Not BaseASRModel.__init__: that builds a log-mel frontend and a CharTokenizer whose blank must be
        # "<pad>" at id 0; this model reads raw waveforms and may keep its pretrained vocabulary.
        nn.Module.__init__(self)
        spec = spec if isinstance(spec, ModelSpec) else self.Spec.from_dict(spec, type(self))
        c: HFCTCConfig = spec.arch
        if spec.features.sample_rate != c.sample_rate:
            raise ValueError(f"features.sample_rate ({spec.features.sample_rate}) must equal models.hf-ctc.sample_rate "
                             f"({c.sample_rate}), the rate the pretrained model was trained at")
        self.features = FeatureSpec(sample_rate=c.sample_rate)
        self.head_learning_rate = c.head_learning_rate
        if "hf_config" in spec.extra:  # rebuilt from a checkpoint: plain data only, no hub access
            hf, extractor, self.tokenizer = self._rebuild(spec)
        else:
            hf, extractor, self.tokenizer = self._pretrained(c, spec)
        if extractor.sampling_rate != c.sample_rate:
            raise ValueError(f"models.hf-ctc.sample_rate = {c.sample_rate}: the pretrained feature extractor "
                             f"expects {extractor.sampling_rate} Hz")
        if c.freeze_feature_encoder:
            if not hasattr(hf, "freeze_feature_encoder"):
                raise ValueError(f"models.hf-ctc.freeze_feature_encoder: {type(hf).__name__} has no feature encoder")
            hf.freeze_feature_encoder()
        self.hf = hf
        self.feature_extractor = extractor
        pretrained_vocab = isinstance(self.tokenizer, PretrainedVocabTokenizer)
        self.spec = spec.replace(features=self.features, vocab=self.tokenizer.vocab, extra={
            "hf_config": hf.config.to_dict(), "feature_extractor": extractor.to_dict(),
            "tokenizer": self.tokenizer.to_dict() if pretrained_vocab else None})

    @property
    def config(self) -> dict:
        """The spec as plain data (what a checkpoint stores)."""
        return self.spec.to_dict()

    @staticmethod
    def _rebuild(spec: ModelSpec) -> tuple[nn.Module, Any, CharTokenizer]:
        """(model with untrained weights, feature extractor, tokenizer) from a checkpoint's spec."""
        from transformers import AutoConfig, AutoModelForCTC

        extra = spec.extra
        hf = AutoModelForCTC.from_config(AutoConfig.for_model(**extra["hf_config"]))
        tokenizer = (PretrainedVocabTokenizer(spec.vocab, **extra["tokenizer"]) if extra.get("tokenizer")
                     else CharTokenizer(spec.vocab))
        return hf, _feature_extractor(extra["feature_extractor"]), tokenizer

    def _pretrained(self, c: HFCTCConfig, spec: ModelSpec) -> tuple[nn.Module, Any, CharTokenizer]:
        """(pretrained model, its feature extractor or a default one, its tokenizer or ours with a new head)."""
        hf, extractor, pretrained_tokenizer = load_pretrained(c.pretrained)
        tokenizer = PretrainedVocabTokenizer.from_pretrained(pretrained_tokenizer) if pretrained_tokenizer else None
        if tokenizer is None:
            tokenizer = CharTokenizer(spec.vocab)
            self._new_head(hf, len(tokenizer), tokenizer.blank_id)
        elif len(tokenizer) > hf.lm_head.out_features:
            raise ValueError(f"models.hf-ctc.pretrained = {c.pretrained!r}: its tokenizer has {len(tokenizer)} "
                             f"symbols but its CTC head only {hf.lm_head.out_features}")
        if extractor is None:
            from transformers import Wav2Vec2FeatureExtractor

            extractor = Wav2Vec2FeatureExtractor(  # models with layer norm in the encoder take an attention mask
                sampling_rate=c.sample_rate, do_normalize=True,
                return_attention_mask=getattr(hf.config, "feat_extract_norm", "layer") == "layer")
        # training.spec_augment false also turns off the model's own time/feature masking
        hf.config.apply_spec_augment = bool(getattr(hf.config, "apply_spec_augment", False)
                                            and spec.spec_augment)
        return hf, extractor, tokenizer

    @staticmethod
    def _new_head(hf: nn.Module, vocab_size: int, blank_id: int) -> None:
        """Replace the CTC head by a freshly initialised one over `vocab_size` symbols (blank `blank_id`)."""
        hf.lm_head = nn.Linear(hf.lm_head.in_features, vocab_size)
        hf.config.vocab_size = vocab_size
        hf.config.pad_token_id = blank_id

    @cached_property
    def min_samples(self) -> int:
        """The shortest input the convolutional encoder turns into one frame (its receptive field)."""
        lengths = torch.arange(1, 1 << 16)
        return int(lengths[self.hf._get_feat_extract_output_lengths(lengths) >= 1][0])

    def parameter_groups(self, base_lr: float) -> list[dict]:
        """Trainable parameters for the optimizer: the CTC head at `head_learning_rate` when it is set."""
        head = [p for p in self.hf.lm_head.parameters() if p.requires_grad]
        head_ids = {id(p) for p in head}
        body = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
        if self.head_learning_rate is None:
            return [{"params": body + head, "lr": base_lr}]
        return [{"params": body, "lr": base_lr}, {"params": head, "lr": self.head_learning_rate}]

    def _logits(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded waveforms (B, T) -> CTC logits (B, frames, vocab) and frame lengths, via the feature extractor."""
        lengths = lengths.cpu()
        audio = [np.pad(w[: int(n)].detach().float().cpu().numpy(), (0, max(0, self.min_samples - int(n))))
                 for w, n in zip(waveforms, lengths)]
        inputs = self.feature_extractor(audio, sampling_rate=self.sample_rate, padding=True,
                                        return_attention_mask=True, return_tensors="pt")
        mask = inputs["attention_mask"]
        kwargs = {"attention_mask": mask.to(self.device)} if self.feature_extractor.return_attention_mask else {}
        logits = self.hf(inputs["input_values"].to(self.device), **kwargs).logits
        frames = self.hf._get_feat_extract_output_lengths(mask.sum(-1)).clamp(max=logits.shape[1])
        return logits, frames.to(torch.long)

    def forward(self, batch: dict) -> torch.Tensor:
        logits, frames = self._logits(batch["waveforms"], batch["waveform_lengths"])
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (frames, B, vocab)
        return F.ctc_loss(log_probs, batch["tokens"].to(self.device), frames.to(self.device),
                          batch["token_lengths"].to(self.device), blank=self.tokenizer.blank_id, reduction="mean",
                          zero_infinity=True)

    @torch.inference_mode()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy CTC; audio longer than `window_seconds` is decoded in overlapping windows (see `_long_logits`)."""
        if int(lengths.max()) <= self.window_seconds * self.sample_rate:
            logits, frames = self._logits(waveforms, lengths)
            best = [logits[i, : int(n)].argmax(-1).cpu() for i, n in enumerate(frames)]
        else:
            best = [self._long_logits(w[: int(n)]).argmax(-1).cpu() for w, n in zip(waveforms, lengths)]
        return [self.tokenizer.decode_ctc(b.tolist()) for b in best]

    def _long_logits(self, waveform: torch.Tensor) -> torch.Tensor:
        """CTC logits (frames, vocab) of one long waveform from windows that overlap by `context_seconds` a side;
        each window keeps only the frames of its centre, as transformers' chunked CTC pipeline does."""
        total, context = waveform.numel(), int(self.context_seconds * self.sample_rate)
        step = max(1, int(self.window_seconds * self.sample_rate) - 2 * context)
        pieces = []
        for start in range(0, total, step):
            lo, hi, end = max(0, start - context), min(total, start + step + context), min(total, start + step)
            logits, frames = self._logits(waveform[lo:hi].unsqueeze(0), torch.tensor([hi - lo]))
            per_sample = int(frames[0]) / (hi - lo)
            pieces.append(logits[0, round((start - lo) * per_sample) : round((end - lo) * per_sample)])
        return torch.cat(pieces)


MODEL = HFCTC
