"""What a model is built from (as whisper's `ModelDimensions`): one frozen dataclass, built in one place from a config.

A `ModelSpec` holds the model's input (`features`: sample rate, window, hop, mel bins, normalization), its output
(`vocab`: the tokenizer's plain dict) and its architecture (`arch`: the model's own validated `Config`, a pydantic
model, e.g. `ConformerConfig` with every preset dimension filled in). `model_spec(cfg, vocab)` builds it from a
validated config; a model's constructor takes it; a checkpoint stores `spec.to_dict()`:

    {"model": "conformer", "features": {...}, "vocab": {...}, "arch": {...}, "spec_augment": true, "extra": {}}

Checkpoints written before the spec existed hold one flat dict (the `models.<name>` keys beside "vocab",
"features", "spec_augment" and the model's `legacy_extra_keys`); `ModelSpec.from_dict` reads both.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .features import FeatureSpec


LEGACY_KEYS = ("vocab", "features", "spec_augment")  # beside the architecture in a pre-spec checkpoint's flat dict


@dataclass(frozen=True)
class ModelSpec:
    """Everything that builds a model; plain data once `to_dict()`-ed (a checkpoint holds nothing else of it)."""

    model: str  # the plugin name: conformer, rnn-t, hf-ctc ...
    features: FeatureSpec
    vocab: dict[str, Any]  # `CharTokenizer.vocab` (or a pretrained model's)
    arch: BaseModel  # the model's validated `models.<name>` section: its `Config`, presets filled in
    spec_augment: bool = False  # mask frequency bands and time spans of the features while training
    extra: dict[str, Any] = field(default_factory=dict)  # plain data a model adds when built (hf-ctc: its HF config)

    def __post_init__(self) -> None:
        check = getattr(self.arch, "check_features", None)  # rules across architecture and features (chunk vs hop)
        if check is not None:
            check(self.features)

    def to_dict(self) -> dict:
        return {"model": self.model, "features": self.features.to_dict(), "vocab": dict(self.vocab),
                "arch": self.arch.model_dump(), "spec_augment": self.spec_augment, "extra": dict(self.extra)}

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict, model_cls: type) -> "ModelSpec":
        """A spec from `to_dict()`'s layout, or from a pre-spec checkpoint's flat dict."""
        if "arch" not in d:  # written before the spec: {**architecture, vocab, features, spec_augment, extras}
            extra_keys = getattr(model_cls, "legacy_extra_keys", ())
            arch = {k: v for k, v in d.items() if k not in LEGACY_KEYS and k not in extra_keys}
            d = {"model": model_cls.name, "features": d.get("features") or {}, "vocab": d["vocab"], "arch": arch,
                 "spec_augment": bool(d.get("spec_augment", False)),
                 "extra": {k: d[k] for k in extra_keys if k in d}}
        features = model_cls.Features.model_validate(d["features"])
        return cls(model=d.get("model", model_cls.name), features=features, vocab=d["vocab"],
                   arch=architecture(model_cls, d["arch"], features), spec_augment=bool(d.get("spec_augment", False)),
                   extra=dict(d.get("extra") or {}))


def architecture(model_cls: type, section: dict, features: BaseModel) -> BaseModel:
    """The model's validated `Config`; an `input_dim` left null is the features' mel bins (stated once)."""
    if section.get("input_dim") is None and "input_dim" in model_cls.Config.model_fields:
        section = {**section, "input_dim": getattr(features, "n_mels", None)}
    return model_cls.Config.model_validate(section)


def model_spec(cfg: dict, vocab: dict, spec_augment: bool = False) -> ModelSpec:
    """The spec of `cfg`'s model (a config validated by `asr_poc.config`): the one place a model's spec is made."""
    from ..plugins import get_model_class  # the registry imports the model modules, which import this one

    model_cls = get_model_class(cfg["model"])
    features = model_cls.Features.model_validate(cfg["features"])
    return model_cls.Spec(model=cfg["model"], features=features, vocab=vocab,
                          arch=architecture(model_cls, cfg["models"][cfg["model"]], features), spec_augment=spec_augment)
