"""`BaseASRModel`: the contract every model (built-in, pip-installed or defined in a notebook) follows."""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..checkpoint_io import checked_model_state, load_checkpoint_file
from ..config import SizeName
from ..io import atomic_torch_save
from ..plugins import get_model_class, register_base
from ..text import make_tokenizer
from .features import FeatureSpec, LogMel
from .spec import ModelSpec

CHECKPOINT_FORMAT = 2  # 2: the config is `ModelSpec.to_dict()`; 1: one flat dict (still read)


class ModelConfig(BaseModel):
    """Keys of `models.<name>`; a model subclasses this to declare (and validate) its own."""

    model_config = ConfigDict(extra="forbid")
    input_dim: Optional[int] = None  # the features' mel bins; null: the spec sets it to `features.n_mels`

    def check_features(self, features: FeatureSpec) -> None:
        """Raise ValueError when these settings do not fit the features (e.g. a chunk that is not whole frames)."""


class PresetModelConfig(ModelConfig):
    """Keys of models with named sizes: every dimension left null comes from the `size` preset."""

    size: SizeName = "xs"
    input_dim: Optional[int] = Field(None, ge=8, le=512)  # null: features.n_mels
    encoder_dim: Optional[int] = Field(None, ge=16, le=2048)
    num_heads: Optional[int] = Field(None, ge=1, le=32)
    num_layers: Optional[int] = Field(None, ge=1, le=48)
    ffn_dim: Optional[int] = Field(None, ge=16, le=16384)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    def fill_from_preset(self, sizes: dict[str, dict[str, int]]) -> None:
        """Fill the null dimensions from `sizes[self.size]`, then check that attention heads divide the width."""
        for key, value in sizes[self.size].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.encoder_dim % self.num_heads:
            raise ValueError(f"encoder_dim ({self.encoder_dim}) must be divisible by num_heads ({self.num_heads})")


class BaseASRModel(nn.Module, ABC):
    """A speech recogniser built from a `ModelSpec` (`asr_poc.models.spec`: features, vocabulary, architecture).

    `model_spec(cfg, vocab)` makes the spec from a config; a plain dict (`spec.to_dict()`, or a checkpoint's config
    from before the spec) is read with `Spec.from_dict`. A checkpoint stores `spec.to_dict()` with the weights, so a
    checkpoint file alone rebuilds the model (`BaseASRModel.from_checkpoint`).

    Subclasses implement `forward(batch) -> loss` and `transcribe(waveforms, lengths) -> list[str]`;
    `inference(waveform) -> str` and the checkpoint methods come from here.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[BaseModel]] = ModelConfig
    Features: ClassVar[type[BaseModel]] = FeatureSpec  # the config's `features` section: the model's input
    Spec: ClassVar[type[ModelSpec]] = ModelSpec
    legacy_extra_keys: ClassVar[tuple[str, ...]] = ()  # keys a pre-spec checkpoint's flat config held beside `vocab`
    streaming: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec | dict):
        super().__init__()
        self.spec = spec if isinstance(spec, ModelSpec) else self.Spec.from_dict(spec, type(self))
        self.tokenizer = make_tokenizer(self.spec.vocab)  # characters, or sub-word pieces (SubwordTokenizer)
        self.features = self.spec.features
        self.frontend = LogMel(self.features, spec_augment=self.spec.spec_augment)

    @property
    def config(self) -> dict:
        """The spec as plain data (what a checkpoint stores)."""
        return self.spec.to_dict()

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

    # --- streaming (models whose `streaming` is True) ---------------------------------------------------------
    # A streaming model consumes audio in chunks of `chunk_ms`, each decodable once `lookahead_ms` more audio (and
    # the log-mel window's own `frontend_delay_ms`) has arrived, and carries its state from chunk to chunk:
    #
    #     state = model.init_stream_state()
    #     text, state = model.stream_step(samples, state)               # any number of new samples, any times
    #     text, state = model.stream_step(empty, state, final=True)     # flush: the last partial chunk
    #
    # `stream_step` runs the encoder on every chunk completed by the new samples and returns the whole hypothesis so
    # far (not a delta). `Transcriber.open_stream()` wraps this for PCM from files or a microphone.
    chunk_ms: float = 0.0
    lookahead_ms: float = 0.0

    @property
    def frontend_delay_ms(self) -> float:
        """Audio needed beyond a frame's end before it can be computed: half the STFT window minus the hop."""
        return 1000.0 * max(0, self.features.n_fft // 2 - self.features.hop_length) / self.sample_rate

    @property
    def algorithmic_latency_ms(self) -> Optional[float]:
        """Worst-case wait, by construction, from speech to the step that decodes it: chunk + look-ahead + frontend.

        None for a model that does not stream (it waits for the whole utterance). Compute time comes on top.
        """
        if not self.streaming:
            return None
        return self.chunk_ms + self.lookahead_ms + self.frontend_delay_ms

    def init_stream_state(self) -> Any:
        """A fresh decoding state for one stream (streaming models override this)."""
        raise NotImplementedError(f"model {self.name!r} does not stream; Transcriber re-decodes it instead")

    def stream_step(self, samples: torch.Tensor, state: Any, final: bool = False) -> tuple[str, Any]:
        """Feed new samples (1-D, at `sample_rate`); returns (hypothesis so far, new state)."""
        raise NotImplementedError(f"model {self.name!r} does not stream; Transcriber re-decodes it instead")

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
        state = self.checkpoint_state(epoch=epoch, **extra)
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        atomic_torch_save(state, path)

    def load_checkpoint(self, path: str | os.PathLike, optimizer: Optional[torch.optim.Optimizer] = None) -> int:
        """Load weights (and optimizer state) from `path`; returns the epoch stored in it.

        The file is read with `weights_only=True` (`asr_poc.checkpoint_io`): a crafted pickle is refused unrun.
        """
        state = load_checkpoint_file(path, map_location=self.device)
        _, _, weights = checked_model_state(state, path)
        self.load_state_dict(weights)
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        return int(state.get("epoch", 0))

    @staticmethod
    def from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> "BaseASRModel":
        """Rebuild any model from a checkpoint file alone (its class is found by name through the plugins)."""
        path = Path(path)
        name, config, weights = checked_model_state(load_checkpoint_file(path, map_location=device), path)
        model = get_model_class(name)(config)
        model.load_state_dict(weights)
        return model.to(device).eval()


register_base("models", BaseASRModel)  # the registry finds a plugin module's model class by this base
