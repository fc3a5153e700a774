"""Where things are: the one project root that relative paths are read against, and the package's own files.

The project root holds a user's `data/`, `checkpoints/`, `configs/` and `benchmarks/results/`. It is
`$ASR_POC_ROOT` when set, else the working directory, or its parent when that is the `notebooks/` folder of a
project (Jupyter and Voila start a notebook's kernel in the notebook's folder). Every process resolves it the same
way, so a training process started from a dashboard kernel finds the same folders without anyone changing
`os.environ`.

The package's defaults ship inside it (package data): `DEFAULT_CONFIG` and `DASHBOARD_NOTEBOOK`. In a source
checkout `asr_poc/configs` and `asr_poc/notebooks` are links to the top-level `configs/` and `notebooks/` that
people edit; a wheel holds copies. This module imports nothing of the project (the ground floor).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

ROOT_ENV = "ASR_POC_ROOT"
PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent  # the source checkout (meaningful only when running from one)
DEFAULT_CONFIG = PACKAGE_ROOT / "configs" / "default.yaml"
DASHBOARD_NOTEBOOK = PACKAGE_ROOT / "notebooks" / "dashboard.ipynb"


def project_root(start: Optional[str | os.PathLike] = None) -> Path:
    """The folder relative paths are read against: $ASR_POC_ROOT, else `start` (default: the working directory),
    or its parent when `start` is a project's `notebooks/` folder (one with a sibling `configs/`)."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    if here.name == "notebooks" and (here.parent / "configs").is_dir():
        return here.parent
    return here


def resolve_path(path: str | os.PathLike) -> Path:
    """`path` with `~` expanded; a relative path is taken from `project_root()`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p
