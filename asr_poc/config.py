"""Load `configs/*.yaml`, merge `--set key=value` overrides, validate, and explain every error in one line.

The file keeps the user's schema (`available_models`, `available_datasets`, `models.<name>`, `datasets.<name>`,
`training`). The top level and `training` are checked here; the section of the chosen model and data set is
checked by that plugin's own `Config` (a pydantic model), so a third-party model brings its own keys.
"""
from __future__ import annotations

import copy
import os
import reprlib
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import plugins, runs
from .io import load_yaml_text
from .paths import DEFAULT_CONFIG

MAX_CONFIG_BYTES = 1 << 20  # a config file larger than this is refused before it is parsed
SHOWN_VALUE_CHARS = 80      # values in error messages are cut to this length
SizeName = Literal["xs", "s", "m"]  # the named model sizes (`models.<name>.size`); each model has a preset per name
SIZE_NAMES: tuple[str, ...] = get_args(SizeName)


class ConfigError(ValueError):
    """A configuration problem; `str()` gives one line per problem: key, value, what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainingConfig(StrictModel):
    learning_rate: float = Field(2e-3, gt=0, le=1)
    batch_size: int = Field(16, ge=1, le=4096)
    batch_seconds: Optional[float] = Field(None, gt=0)  # padded audio seconds a batch holds (None: batch_size)
    optimizer: Literal["adam", "adamw"] = "adamw"
    weight_decay: float = Field(0.01, ge=0, le=1)
    epochs: int = Field(30, ge=1, le=100_000)
    max_minutes: Optional[float] = Field(None, gt=0)
    max_steps: Optional[int] = Field(None, ge=1)
    warmup_steps: int = Field(150, ge=0)
    lr_schedule: Literal["inverse_sqrt", "cosine", "constant"] = "inverse_sqrt"
    grad_clip: float = Field(5.0, gt=0)
    checkpoint_every: int = Field(1, ge=1)
    checkpoint_minutes: Optional[float] = Field(5.0, gt=0)
    eval_utterances: int = Field(100, ge=0)
    extra_eval: list[str] = ["real-check", "recordings"]  # data sets whose test split is scored beside dev
    spec_augment: bool = True
    tensorboard: bool = False  # also write TensorBoard scalars under <run>/tensorboard (asr_poc.training.tensorboard)
    seed: int = 0
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    num_threads: Optional[int] = Field(None, ge=1, le=512)
    threads: Literal["auto", "torch"] = "auto"  # asr_poc/threads.py: auto = passive OpenMP wait, free cores at start
    nice: int = Field(0, ge=0, le=19)  # niceness added to a background run (asr_poc/threads.py)
    num_workers: int = Field(0, ge=0, le=64)
    # where the waveform augmentation runs: workers (per utterance, asr_poc/augment.py), batches (on the training
    # device, asr_poc/augment_batch.py), auto (batches on CUDA, workers on the CPU: measured in benchmarks/README.md)
    augment_in: Literal["auto", "workers", "batches"] = "auto"
    mixed_precision: bool = True
    init_checkpoint: Optional[str] = None  # a new run starts from these weights (and their vocabulary)
    # a new run's CTC head: null = characters; N = at most N sentencepiece BPE pieces trained on the train split
    # (asr_poc.text.SubwordTokenizer; greedy decoding only: beam search with a character or word LM refuses it)
    subword_vocab_size: Optional[int] = Field(None, ge=8, le=8192)


class DecodingOptions(StrictModel):
    """`decoding`: how transcripts are read from a CTC model's output (asr_poc/decoding/). The one description of
    the decoding choices: the config validates it, the beam decoder reads it, the CLI and the Test tab build it."""

    method: Literal["greedy", "beam"] = "greedy"
    beam_size: int = Field(32, ge=1, le=10_000)
    beam_threshold: float = Field(25.0, gt=0)  # hypotheses this far below the best are pruned
    lm_path: Optional[str] = None  # a folder written by `asr-poc lm build`
    lm_weight: float = Field(0.5, ge=0, le=100)  # LM log10 score x this, added to the acoustic log-probability
    word_score: float = Field(0.0, ge=-100, le=100)  # added per word (positive: longer outputs)
    lexicon: bool = True  # only words of the LM folder's lexicon (false: any character string)
    hotwords: list[str] = []  # "word" or "word:weight", boosted in the lexicon decoder
    hotword_weight: float = Field(5.0, ge=0, le=100)  # default boost (log10 units, x lm_weight)

    @classmethod
    def from_dict(cls, section: Optional[dict]) -> "DecodingOptions":
        """Validated options from a `decoding` section (keys of other versions are ignored); None: greedy."""
        if isinstance(section, DecodingOptions):
            return section
        return cls.model_validate({k: v for k, v in (section or {}).items() if k in cls.model_fields})

    def to_dict(self) -> dict:
        return self.model_dump()

    def describe(self) -> str:
        """Short label, e.g. `greedy` or `beam 32 + lexicon + LM x0.5`."""
        if self.method == "greedy":
            return "greedy"
        parts = [f"beam {self.beam_size}", "lexicon" if self.lexicon else "lexicon-free"]
        if self.lm_path:
            parts.append(f"LM x{self.lm_weight:g}")
        if self.word_score:
            parts.append(f"word score {self.word_score:g}")
        return " + ".join(parts)

    def label(self) -> str:
        """`describe()` and the LM folder, for reports: `beam 32 + lexicon + LM x0.5 (lm/english)`."""
        return self.describe() + (f" ({self.lm_path})" if self.method == "beam" and self.lm_path else "")


DecodingConfig = DecodingOptions  # the section's schema under the name the other sections use


class TopLevelConfig(StrictModel):
    available_models: list[str] = Field(min_length=1)
    available_datasets: list[str] = Field(min_length=1)
    model: str
    dataset: str
    checkpoint_dir: str = "checkpoints"
    plugin_paths: list[str] = []
    features: dict[str, Any] = {}  # the model's input: log-mel settings, checked by the model's `Features` schema
    models: dict[str, dict[str, Any]]
    datasets: dict[str, dict[str, Any]]
    training: TrainingConfig
    decoding: DecodingConfig = DecodingConfig()


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = SHOWN_VALUE_CHARS
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def short_repr(value: Any) -> str:
    """`repr(value)` cut to about SHOWN_VALUE_CHARS characters (without building the whole repr of a huge value)."""
    return cut(_SHORT.repr(value))


def cut(text: str) -> str:
    """`text` cut to SHOWN_VALUE_CHARS characters."""
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def deep_merge(base: dict, update: dict) -> dict:
    """Return `base` updated by `update`, merging nested mappings key by key."""
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """`training.batch_size=8` -> (['training', 'batch_size'], 8); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError([f"override {text!r}: expected KEY=VALUE, e.g. training.batch_size=8"])
    key, _, value = text.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError([f"override {text!r}: empty key"])
    try:
        parsed = load_yaml_text(value) if value.strip() else None
    except yaml.composer.ComposerError as err:
        raise ConfigError([f"override {short_repr(text)}: {err.problem}"]) from None
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    out = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError([f"{'.'.join(parts[: i + 1])} = {short_repr(child)}: not a section, cannot set "
                                   f"{short_repr(text)}"])
            node = child
        node[parts[-1]] = value
    return out


def _allowed_keys(schema: Optional[type[BaseModel]], loc: tuple) -> list[str]:
    """The keys allowed in the section at `loc` of `schema` (a nested pydantic model), or [] if not known."""
    for part in loc:
        field = schema.model_fields.get(str(part)) if schema is not None else None
        annotation = field.annotation if field is not None else None
        schema = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return sorted(schema.model_fields) if schema is not None else []


def format_validation_error(err: ValidationError, prefix: str = "",
                            schema: Optional[type[BaseModel]] = None) -> list[str]:
    """One line per pydantic error: `key = value: what is allowed` (values cut short).

    With `schema`, an unknown key lists the keys allowed in its own section."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(e["loc"]))
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(schema, tuple(e["loc"][:-1])))
            lines.append(f"{key}: unknown key" + (f" (allowed: {allowed})" if allowed else ""))
        elif not e["loc"]:  # a rule across several keys of the section
            lines.append(f"{key}: {e['msg'].removeprefix('Value error, ')}")
        elif e["type"] == "missing":
            lines.append(f"{key}: missing (required)")
        else:
            lines.append(f"{key} = {short_repr(e.get('input'))}: {e['msg']}")
    return lines


def validate_section(schema: type[BaseModel], data: Any, prefix: str) -> tuple[dict, list[str]]:
    """Validate one section with a pydantic schema; return (normalized dict, problems)."""
    if not isinstance(data, dict):
        return {}, [f"{prefix} = {short_repr(data)}: must be a mapping of keys to values"]
    try:
        return schema.model_validate(data).model_dump(), []
    except ValidationError as err:
        return {}, format_validation_error(err, prefix, schema)


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file {str(path)!r}: not found"])
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError([f"config file {str(path)!r}: {size:,} bytes is too large for a config "
                           f"(at most {MAX_CONFIG_BYTES:,})"])
    try:
        data = load_yaml_text(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"config file {str(path)!r}: not valid YAML{where} ({cut(str(err).splitlines()[0])})"]
                          ) from None
    if not isinstance(data, dict):
        raise ConfigError([f"config file {str(path)!r}: must hold a mapping at the top level"])
    return data


def load_config(
    path: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    *,
    check_data: bool = True,
) -> dict:
    """Read the default config, merge the file at `path` and the overrides, validate, and return a plain dict.

    The chosen model's and data set's sections are validated by their plugins and have their presets filled in.
    Raises `ConfigError` listing every problem, one per line.
    """
    return validate_config(merged_raw(path, overrides), check_data=check_data)


def merged_raw(path: Optional[str | os.PathLike] = None, overrides: Iterable[str] = ()) -> dict:
    """The default config with the file at `path` and the overrides merged in, not yet validated."""
    raw = read_yaml(DEFAULT_CONFIG)
    if path is not None and Path(path).resolve() != DEFAULT_CONFIG.resolve():
        raw = deep_merge(raw, read_yaml(path))
    return apply_overrides(raw, overrides)


def load_top_level(path: Optional[str | os.PathLike] = None, overrides: Iterable[str] = ()) -> dict:
    """The merged config with its top-level keys validated and no plugin loaded (no model, so no torch): what the
    page needs; `load_config` checks the model's and data set's sections too."""
    cfg, problems = validate_section(TopLevelConfig, merged_raw(path, overrides), "")
    if problems:
        raise ConfigError(problems)
    return cfg


def load_section(name: str, path: Optional[str | os.PathLike] = None, overrides: Iterable[str] = ()) -> dict:
    """One validated top-level section (e.g. `decoding`), as `load_top_level` reads it."""
    return load_top_level(path, overrides)[name]


def validate_config(raw: dict, *, check_data: bool = True) -> dict:
    """Validate an already merged config dict (see `load_config`)."""
    cfg, problems = validate_section(TopLevelConfig, raw, "")
    names_ok = not problems
    source = cfg or (raw if isinstance(raw, dict) else {})  # names are checked even when other keys are wrong
    for kind in ("model", "dataset"):
        name, available = source.get(kind), source.get(f"available_{kind}s")
        if isinstance(name, str) and isinstance(available, list) and name not in available:
            problems.append(f"{kind} = {short_repr(name)}: not in available_{kind}s "
                            f"({cut(', '.join(map(str, available)))})")
            names_ok = False
        elif names_ok and name not in cfg[f"{kind}s"]:
            problems.append(f"{kind}s.{name}: missing section for the chosen {kind} {name!r}")
    for name in cfg["training"]["extra_eval"] if names_ok else ():
        if name not in cfg["datasets"]:
            problems.append(f"training.extra_eval: {name!r} is not an entry of `datasets` "
                            f"({', '.join(cfg['datasets'])})")
    if problems:
        raise ConfigError(problems)
    plugins.add_plugin_paths(cfg["plugin_paths"])

    try:
        model_cls = plugins.get_model_class(cfg["model"])
        dataset_cls = plugins.get_dataset_class(cfg["dataset"])
    except plugins.PluginNotFound as err:
        raise ConfigError([str(err)]) from None

    model_section, p1 = validate_section(model_cls.Config, cfg["models"][cfg["model"]], f"models.{cfg['model']}")
    features, p3 = validate_section(model_cls.Features, cfg["features"], "features")
    rate = features.get("sample_rate")  # the data is read at the model's rate: stated once, in `features`
    data_raw = cfg["datasets"][cfg["dataset"]]
    if isinstance(data_raw, dict) and rate is not None:
        if data_raw.get("sample_rate", rate) != rate:
            p3.append(f"datasets.{cfg['dataset']}.sample_rate = {data_raw['sample_rate']!r}: differs from "
                      f"features.sample_rate ({rate}); state it once, in `features`")
        data_raw = {**data_raw, "sample_rate": rate}
    data_section, p2 = validate_section(dataset_cls.Config, data_raw, f"datasets.{cfg['dataset']}")
    problems += p1 + p3 + p2
    if not problems:
        if model_section.get("input_dim") not in (None, features.get("n_mels")):
            problems.append(f"models.{cfg['model']}.input_dim = {model_section['input_dim']!r}: must equal "
                            f"features.n_mels ({features.get('n_mels')})")
        check = getattr(model_cls.Config.model_validate(model_section), "check_features", None)
        try:
            if check is not None:
                check(model_cls.Features.model_validate(features))  # rules across the two (chunk vs hop)
        except ValueError as err:
            problems.append(f"models.{cfg['model']}: {err}")
        if check_data:
            missing = dataset_cls.check_source(data_section)
            if missing:
                problems.append(f"datasets.{cfg['dataset']}.path = {data_section['path']!r}: {missing}")
    if problems:
        raise ConfigError(problems)
    cfg["models"][cfg["model"]] = model_section
    cfg["features"] = features
    cfg["datasets"][cfg["dataset"]] = data_section
    return cfg


def model_section(cfg: dict) -> dict:
    return cfg["models"][cfg["model"]]


def dataset_section(cfg: dict) -> dict:
    return cfg["datasets"][cfg["dataset"]]


def override_training(cfg: dict, overrides: list[str]) -> dict:
    """`cfg` with `training.*` overrides applied and validated: a resumed run keeps its model and data."""
    fixed = [o for o in overrides if not o.strip().startswith("training.")]
    if fixed:
        raise ConfigError([f"override {o!r}: a resumed run keeps its model and data; only training.* keys "
                           f"can change" for o in fixed])
    return validate_config(apply_overrides(cfg, overrides), check_data=False)


runs.set_config_editor(override_training)  # `Run.override_training` stands below this module and cannot import it
