"""Find model and data-set classes by name.

Four sources, searched in this order:
1. classes registered at run time with `@register_model("name")` / `@register_dataset("name")` (a notebook cell);
2. the package module `asr_poc.models.<name>` / `asr_poc.datasets.<name>` (a dash becomes an underscore);
3. Python entry points in the groups `asr_poc.models` / `asr_poc.datasets` (a pip-installed third-party plugin);
4. `<name>.py` files in folders listed in the config's `plugin_paths`.
A module provides its class as the attribute `MODEL` / `DATASET`, or as the single subclass of the base it defines.
An unknown name raises `PluginNotFound`, which lists the names that exist.

The registry stands on the ground floor: it imports neither interface. `models/interface.py` and
`datasets/interface.py` hand it their base class (`register_base`) when they are imported, which every plugin
module does to subclass it.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, TypeVar

from .paths import resolve_path

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, dict[str, type]] = {"models": {}, "datasets": {}}
_BASES: dict[str, type] = {}
_PLUGIN_PATHS: list[Path] = []
ALIASES = {"models": {"rnn-t": "rnnt", "rnn_t": "rnnt"}, "datasets": {}}


class PluginNotFound(LookupError):
    """No plugin of that name; the message lists the names that exist."""


def register_model(name: str) -> Callable[[T], T]:
    """Decorator: make a model class loadable by `name` (e.g. one defined in a notebook)."""
    return _register("models", name)


def register_dataset(name: str) -> Callable[[T], T]:
    """Decorator: make a data-set class loadable by `name`."""
    return _register("datasets", name)


def _register(kind: str, name: str) -> Callable[[T], T]:
    def wrap(cls: T) -> T:
        cls.name = name
        _REGISTRY[kind][name] = cls
        return cls

    return wrap


def register_base(kind: str, base: type) -> None:
    """Called by an interface module: `base` is the class every plugin of `kind` ('models'/'datasets') subclasses."""
    _BASES[kind] = base


def add_plugin_paths(paths: list[str]) -> None:
    for p in paths:
        path = resolve_path(p)
        if path not in _PLUGIN_PATHS:
            _PLUGIN_PATHS.append(path)


def _class_from_module(module, kind: str, name: str) -> type:
    attr = "MODEL" if kind == "models" else "DATASET"
    cls = getattr(module, attr, None)
    if cls is None:
        base = _BASES.get(kind)  # registered by the interface module, which the plugin module has imported
        found = [v for v in vars(module).values() if base is not None and isinstance(v, type)
                 and issubclass(v, base) and v is not base and v.__module__ == module.__name__]
        if len(found) != 1:
            raise PluginNotFound(f"{kind[:-1]} plugin {name!r} ({module.__name__}): define {attr} = YourClass")
        cls = found[0]
    cls.name = name
    return cls


def _module_name(name: str, kind: str) -> str:
    return ALIASES[kind].get(name, name).replace("-", "_")


def _find(kind: str, name: str) -> type:
    if name in _REGISTRY[kind]:
        return _REGISTRY[kind][name]
    module_name = f"asr_poc.{kind}.{_module_name(name, kind)}"
    if importlib.util.find_spec(module_name) is not None:
        return _class_from_module(importlib.import_module(module_name), kind, name)
    for ep in entry_points(group=f"asr_poc.{kind}"):
        if ep.name == name:
            obj = ep.load()
            return obj if isinstance(obj, type) else _class_from_module(obj, kind, name)
    for folder in _PLUGIN_PATHS:
        for candidate in (folder / f"{name}.py", folder / f"{_module_name(name, kind)}.py"):
            if candidate.is_file():
                mod_name = f"asr_poc_plugin_{kind}_{_module_name(name, kind)}"
                spec = importlib.util.spec_from_file_location(mod_name, candidate)
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
                return _class_from_module(module, kind, name)
    raise PluginNotFound(f"unknown {kind[:-1]} {name!r}; available: {', '.join(available(kind)) or 'none'}")


def available(kind: str) -> list[str]:
    """Every name that `get_model_class` (kind='models') or `get_dataset_class` (kind='datasets') accepts."""
    names = set(_REGISTRY[kind])
    package = importlib.import_module(f"asr_poc.{kind}")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg and not module.name.startswith("_"):
            names |= _declared_plugin(Path(module.module_finder.path) / f"{module.name}.py", kind)
    names |= {ep.name for ep in entry_points(group=f"asr_poc.{kind}")}
    for folder in _PLUGIN_PATHS:
        names |= {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    inverse = {v: k for k, v in ALIASES[kind].items() if "-" in k}
    return sorted(inverse.get(n, n) for n in names)


def _declared_plugin(path: Path, kind: str) -> set[str]:
    """The name a package module gives its plugin (`MODEL = Cls` / `DATASET = Cls`, and `Cls.name = "..."`),
    read from its source without importing it (no torch); empty for a helper module (features, spec ...)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    attr = "MODEL" if kind == "models" else "DATASET"
    exported = [n.value.id for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name)
                and any(isinstance(t, ast.Name) and t.id == attr for t in n.targets)]
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in exported:
            for item in node.body:
                if (isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "name" for t in item.targets)
                        and isinstance(item.value, ast.Constant) and isinstance(item.value.value, str)):
                    return {item.value.value}
            return {path.stem}
    return set()


def get_model_class(name: str) -> type:
    return _find("models", name)


def get_dataset_class(name: str) -> type:
    return _find("datasets", name)


def load_dataset(name: str, config: dict, split: str):
    """Build the data set `name` for `split` ('train', 'dev' or 'test')."""
    return get_dataset_class(name)(config, split)
