"""The layers written in pyproject.toml ([tool.importlinter]) hold, a forbidden import breaks them, and no two
modules of asr_poc import each other (directly or round a circle)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the asr_poc package found in `project` (its own process: the package under test, not ours)."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)


FACES = "the faces (ui, cli, __main__) import only asr_poc.app"
FACE_MODULES = {"asr_poc.ui", "asr_poc.cli", "asr_poc.__main__"}


def contract(name: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return next(c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == name)


def test_the_faces_contract_forbids_every_module_but_the_application_layer():
    """The faces' contract lists what they may not import; a module added to the package is on that list, or the
    faces could import it unchecked."""
    faces = contract(FACES)
    assert set(faces["source_modules"]) == FACE_MODULES
    package = {f"asr_poc.{p.stem}" for p in (ROOT / "asr_poc").glob("*.py") if p.stem != "__init__"}
    package |= {f"asr_poc.{p.name}" for p in (ROOT / "asr_poc").iterdir() if (p / "__init__.py").is_file()}
    assert set(faces["forbidden_modules"]) == package - FACE_MODULES - {"asr_poc.app"}


def test_the_layer_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, bad_import, contract", [
    ("asr_poc/models/interface.py", "from ..training import checkpoint as _training",
     "a model knows nothing of training, evaluation or the screens"),
    ("asr_poc/datasets/ljspeech.py", "from ..models import interface as _models", "data knows no model"),
    ("asr_poc/runs.py", "from . import config as _config", "layers"),  # the ground floor reaching up
    ("asr_poc/training/trainer.py", "from ..ui import history as _ui", "nothing below the screens imports them"),
    ("asr_poc/ui/run_browser.py", "from ..runs import list_runs as _runs", FACES),  # a panel reaching past the app
    ("asr_poc/cli.py", "from .bench import report as _bench", FACES),
])
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, module: str, bad_import: str, contract: str):
    """A copy of the package with one import added that the contracts forbid: lint-imports fails and names it."""
    shutil.copytree(ROOT / "asr_poc", tmp_path / "asr_poc", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "data", "configs", "notebooks", "jupyter"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path).returncode == 0, "the copy holds before the bad import is added"

    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}  # added by the test\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    report = " ".join(result.stdout.split())  # long contract names wrap
    assert f"{contract} BROKEN" in report, result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout  # the report names the importer


def import_cycles(package: str) -> list[list[str]]:
    """Groups of modules of `package` that import each other round a circle (strongly connected, Tarjan)."""
    graph = grimp.build_graph(package, cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: sorted(set(graph.find_modules_directly_imported_by(m)) & set(modules)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []
    for start in modules:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(edges[child])))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges[node]:
                    cycles.append(sorted(group))
    return cycles


def test_no_module_imports_round_a_circle():
    cycles = import_cycles("asr_poc")
    assert not cycles, "import circles (function-level imports count too): " + "; ".join(
        " <-> ".join(group) for group in cycles)


def test_the_cycle_finder_finds_a_circle(tmp_path: Path, monkeypatch):
    """The check above can fail: two modules that import each other (one inside a function) are found."""
    package = tmp_path / "circle_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from . import a\n")
    (package / "c.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("circle_pkg") == [["circle_pkg.a", "circle_pkg.b"]]


@pytest.mark.parametrize("module", ["asr_poc.ui.dashboard", "asr_poc.cli", "asr_poc.runs", "asr_poc.config"])
def test_the_light_modules_do_not_import_torch(module: str):
    """A dashboard page's kernel, the CLI's start and the run-folder readers stay light: torch loads when used."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'torchaudio') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
