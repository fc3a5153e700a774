"""`BaseASRModel`: the contract every model (built-in, pip-installed or defined in a notebook) follows."""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from ..audio import FeatureConfig, LogMel
from ..text import CharTokenizer

CHECKPOINT_FORMAT = 1


class ModelConfig(BaseModel):
    """Keys of `models.<name>`; a model subclasses this to declare (and validate) its own."""

    model_config = ConfigDict(extra="forbid")
    input_dim: int = 80


class BaseASRModel(nn.Module, ABC):
    """A speech recogniser built from a config dict.

    `config` holds the model's own keys (its `models.<name>` section) plus two keys the trainer adds:
    `vocab` (the tokenizer's dict) and `features` (log-mel settings). A checkpoint stores this dict with the
    weights, so a checkpoint file alone rebuilds the model (`BaseASRModel.from_checkpoint`).

    Subclasses implement `forward(batch) -> loss` and `transcribe(waveforms, lengths) -> list[str]`;
    `inference(waveform) -> str` and the checkpoint methods come from here.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[BaseModel]] = ModelConfig
    streaming: ClassVar[bool] = False

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        self.tokenizer = CharTokenizer(config["vocab"])
        self.features = FeatureConfig.from_dict(config.get("features", {}))
        self.frontend = LogMel(self.features, spec_augment=bool(config.get("spec_augment", False)))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @abstractmethod
    def forward(self, batch: dict) -> torch.Tensor:
        """Training/validation loss (scalar) for a batch from `collate_fn` (with tokens)."""

    @abstractmethod
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Batched greedy decoding of padded waveforms (B, T) at `sample_rate`."""

    @torch.no_grad()
    def inference(self, waveform: Any) -> str:
        """Transcribe one waveform (1-D array or tensor of samples at `sample_rate`)."""
        was_training = self.training
        self.eval()
        try:
            wav = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(1, -1).to(self.device)
            return self.transcribe(wav, torch.tensor([wav.shape[1]], device=self.device))[0]
        finally:
            self.train(was_training)

    # --- checkpoints -------------------------------------------------------------------------------------------
    def checkpoint_state(self, **extra: Any) -> dict:
        """Everything needed to rebuild the model, plus any training state passed in `extra`."""
        return {"format": CHECKPOINT_FORMAT, "model_name": self.name, "config": self.config,
                "state_dict": self.state_dict(), **extra}

    def save_checkpoint(self, path: str | os.PathLike, optimizer: Optional[torch.optim.Optimizer] = None,
                        epoch: int = 0, **extra: Any) -> None:
        """Write a self-contained checkpoint atomically (temporary file, then rename)."""
        from ..training.checkpoint import atomic_torch_save

        state = self.checkpoint_state(epoch=epoch, **extra)
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        atomic_torch_save(state, path)

    def load_checkpoint(self, path: str | os.PathLike, optimizer: Optional[torch.optim.Optimizer] = None) -> int:
        """Load weights (and optimizer state) from `path`; returns the epoch stored in it."""
        state = torch.load(Path(path), map_location=self.device, weights_only=False)
        self.load_state_dict(state["state_dict"])
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        return int(state.get("epoch", 0))

    @staticmethod
    def from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> "BaseASRModel":
        """Rebuild any model from a checkpoint file alone (its class is found by name through the plugins)."""
        from ..plugins import get_model_class

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location=device, weights_only=False)
        except Exception as err:
            raise ValueError(f"{path}: not a readable checkpoint ({err.__class__.__name__})") from None
        if not isinstance(state, dict) or "model_name" not in state:
            raise ValueError(f"{path}: not an asr-poc checkpoint")
        model = get_model_class(state["model_name"])(state["config"])
        model.load_state_dict(state["state_dict"])
        return model.to(device).eval()
