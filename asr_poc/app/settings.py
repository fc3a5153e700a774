"""The config and the project's folders as the faces read them: the merged, validated config (a `ConfigError` holds
one line per problem), its sections read without loading the plugins, where runs and data live, and how many
threads a face may decode with while a run trains.

The command line and the dashboard take these names from here, not from `asr_poc.config`, `asr_poc.paths` or
`asr_poc.threads`; they are those modules' own functions, so a config reads the same wherever it is read. Nothing
here imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

from ..config import (SIZE_NAMES, ConfigError, apply_overrides, dataset_section, deep_merge, load_config, load_section,
                      load_top_level, read_yaml)
from ..io import dump_yaml
from ..paths import DASHBOARD_NOTEBOOK, DEFAULT_CONFIG, project_root, resolve_path
from ..threads import set_decode_threads

__all__ = ["DASHBOARD_NOTEBOOK", "SIZE_NAMES", "ConfigError", "config_yaml", "dataset_section", "extra_eval_names",
           "load_config", "load_section", "load_top_level", "project_root", "resolve_path", "set_decode_threads"]


def config_yaml(config_path: Optional[str] = None, overrides: Iterable[str] = (), check_data: bool = False) -> str:
    """The resolved config as YAML (`asr-poc config show`): defaults, then `config_path`, then `overrides`,
    validated, with the model's and data set's presets filled in. Raises `ConfigError`."""
    return dump_yaml(load_config(config_path, list(overrides), check_data=check_data))


def extra_eval_names(config_path: Optional[str | os.PathLike] = None, overrides: Iterable[str] = ()) -> list[str]:
    """`training.extra_eval` of the merged config, read without loading plugins (no torch in a page kernel)."""
    raw = read_yaml(DEFAULT_CONFIG)
    if config_path is not None and Path(config_path).resolve() != DEFAULT_CONFIG.resolve():
        raw = deep_merge(raw, read_yaml(config_path))
    names = (apply_overrides(raw, list(overrides)).get("training") or {}).get("extra_eval") or []
    return [str(n) for n in names] if isinstance(names, list) else []
