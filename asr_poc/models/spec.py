"""What a model is built from, put together in one place from a validated config."""
from __future__ import annotations


def model_config(cfg: dict, vocab: dict, spec_augment: bool = False) -> dict:
    """The dict a model is built from: its `models.<name>` section, the vocabulary and the `features` section."""
    return {**cfg["models"][cfg["model"]], "vocab": vocab, "features": dict(cfg["features"]),
            "spec_augment": spec_augment}
