"""docs/architecture.md cannot drift: it names every layer of the import contract, every module of the package, and
every application call it says a face makes exists."""
from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAP = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def contract_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")["layers"]
    return [m.strip() for layer in layers for m in re.split(r"[:|]", layer)]


@pytest.mark.parametrize("module", contract_modules())
def test_every_layer_of_the_contract_is_on_the_map(module: str):
    assert f"`{module}`" in MAP


def test_every_module_of_the_package_belongs_to_a_layer_on_the_map():
    named = set(contract_modules())
    top = {f"asr_poc.{p.stem}" for p in (ROOT / "asr_poc").glob("*.py") if p.stem != "__init__"}
    top |= {f"asr_poc.{p.name}" for p in (ROOT / "asr_poc").iterdir()
            if p.is_dir() and (p / "__init__.py").is_file()}
    assert top - named == set(), "a module outside every layer: add it to pyproject.toml and docs/architecture.md"


def test_every_application_call_on_the_map_exists():
    calls = re.findall(r"`(asr_poc\.app\.[\w.]+)`", MAP)
    assert len(calls) >= 6
    for call in calls:
        module_name, _, attribute = call.rpartition(".")
        while module_name:
            try:
                target = importlib.import_module(module_name)
                break
            except ModuleNotFoundError:
                module_name, _, parent = module_name.rpartition(".")
                attribute = f"{parent}.{attribute}"
        for part in attribute.split("."):
            target = getattr(target, part)
        assert callable(target), call
