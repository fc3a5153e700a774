"""A request to train, as a person makes it (the form, the command line, "Adapt to my voice"), and the one place it
becomes config values.

`RunRequest` holds the choices by name (model, size, data set, optimiser settings, limits, a starting checkpoint,
an adaptation) and any other keys as `extra` (`{"training.seed": 3}`). `resolve` merges it over the config files
and validates the result once, into the config the run trains with. Unset fields (None) keep the config's value.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import ConfigError, SizeName, deep_merge, format_validation_error, merged_raw, parse_override, \
    validate_config


class _Request(BaseModel):
    """A frozen pydantic model whose wrong values are a `ConfigError` (one line a problem, as a config's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **fields: Any):
        try:
            super().__init__(**fields)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, schema=type(self))) from None


class Adaptation(_Request):
    """Adapt `RunRequest.init_from` to a person's recordings (`asr_poc.adapt`): the corpus mixed with their clips."""

    speaker: Optional[str] = None          # whose recordings (None: everyone's)
    repeat: Optional[int] = Field(None, ge=1)  # times each clip is seen per pass (None: a quarter of each epoch)


class RunRequest(_Request):
    """What to train. Types are checked here; values are checked once, by the config's schema, in `resolve`."""

    config_path: Optional[str] = None      # YAML merged over configs/default.yaml
    base: Optional[dict[str, Any]] = None  # or a config (a notebook's, a test's) to start from instead
    model: Optional[str] = None
    size: Optional[SizeName] = None        # the model's named size (models.<model>.size)
    dataset: Optional[str] = None
    learning_rate: Optional[float] = None
    batch_size: Optional[int] = None
    epochs: Optional[int] = None
    checkpoint_every: Optional[int] = None
    minutes: Optional[float] = None        # wall-clock budget; 0: no limit
    max_steps: Optional[int] = None
    init_from: Optional[str] = None        # start from this checkpoint's weights and vocabulary
    adaptation: Optional[Adaptation] = None
    root: Optional[str] = None             # the runs folder (checkpoint_dir)
    extra: dict[str, Any] = {}             # any other keys, dotted: {"training.seed": 3}

    def config_values(self, model: str) -> dict[str, Any]:
        """The request as dotted config keys -> values (`model`: the run's model, for its size). `extra` comes
        first and the named fields win over it. The only place a request turns into config keys."""
        named = {"model": self.model, "dataset": self.dataset, "checkpoint_dir": self.root,
                 f"models.{model}.size": self.size,
                 "training.learning_rate": self.learning_rate, "training.batch_size": self.batch_size,
                 "training.epochs": self.epochs, "training.checkpoint_every": self.checkpoint_every,
                 "training.max_steps": self.max_steps, "training.init_checkpoint": self.init_from}
        values = dict(self.extra)
        values.update({key: value for key, value in named.items() if value is not None})
        if self.minutes is not None:
            values["training.max_minutes"] = self.minutes or None  # 0: no time limit
        return values

    def training_values(self) -> dict[str, Any]:
        """The `training.*` values of the request (what a resumed run may change); anything else is refused."""
        values = self.config_values("")
        fixed = [key for key in values if not key.startswith("training.") or key == "training.init_checkpoint"]
        if fixed or self.adaptation is not None:
            raise ConfigError([f"{key}: a resumed run keeps its model and data; only training.* keys can change"
                               for key in fixed or ["adaptation"]])
        return values


def parse_sets(texts: Iterable[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` strings (values read as YAML) as `RunRequest.extra`; later keys win."""
    values: dict[str, Any] = {}
    for text in texts:
        parts, value = parse_override(text)
        values[".".join(parts)] = value
    return values


def nested(values: dict[str, Any]) -> dict:
    """{"training.seed": 3} -> {"training": {"seed": 3}}, to merge over a config."""
    out: dict = {}
    for key, value in values.items():
        *sections, last = key.split(".")
        node = out
        for part in sections:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    return out


def raw_config(request: RunRequest) -> dict:
    """The request merged over its base (`base`, else the config files), not yet validated."""
    base = request.base if request.base is not None else merged_raw(request.config_path)
    model = request.model or base.get("model") or ""
    return deep_merge(base, nested(request.config_values(str(model))))


def resolve(request: RunRequest, check_data: bool = True) -> dict:
    """The validated config of the run `request` asks for; raises `ConfigError` (one line a problem)."""
    return validate_config(raw_config(request), check_data=check_data)
