"""Both notebooks run top to bottom in a fresh kernel (nbclient), against a project folder in a temporary place."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from asr_poc.paths import REPO_ROOT
from asr_poc.runs import Run, list_runs
from asr_poc.training.trainer import train
from conftest import copy_run, tiny_config

NOTEBOOKS = REPO_ROOT / "notebooks"


@pytest.fixture(scope="module")
def earlier_run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A conformer run trained for 3 steps with a dev evaluation, once for both notebooks."""
    run = Run.create(tiny_config(small_corpus, tmp_path_factory.mktemp("earlier"), "training.max_steps=3",
                                 "training.eval_utterances=2"))
    assert train(run)["state"] == "finished"
    return run


@pytest.fixture
def project(small_corpus: Path, earlier_run: Run, tmp_path: Path, monkeypatch) -> Path:
    """A project folder: data/synthetic (the small corpus) and a copy of the earlier conformer run in checkpoints/."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(small_corpus, target_is_directory=True)
    copy_run(earlier_run, tmp_path / "checkpoints")
    monkeypatch.setenv("ASR_POC_ROOT", str(tmp_path))
    monkeypatch.delenv("ASR_POC_CONFIG", raising=False)
    return tmp_path


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


def test_dashboard_notebook_runs(project: Path):
    notebook = execute("dashboard.ipynb")
    assert "Dashboard(" in outputs(notebook)


def test_research_notebook_trains_an_inline_model_and_compares_it(project: Path, monkeypatch):
    monkeypatch.setenv("RESEARCH_MAX_STEPS", "4")
    notebook = execute("research.ipynb")
    text = outputs(notebook)
    runs = {r.status.get("model"): r for r in list_runs(project / "checkpoints")}
    assert set(runs) == {"conformer", "bigru"}
    new = runs["bigru"]
    assert new.status["state"] == "finished" and new.status["step"] == 4 and new.best_checkpoint.is_file()
    assert f"{new.id} finished step 4" in text
    assert f"{runs['conformer'].id}: conformer" in text, "the earlier run is ticked for comparison"
