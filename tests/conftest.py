"""Shared test fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def offline_hugging_face(tmp_path_factory: pytest.TempPathFactory):
    """Tests never reach a hub, and Hugging Face caches stay inside the test session's temporary folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
    mp.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-utterance synthetic corpus (seed 1) in the LJSpeech layout, generated once per test session."""
    from asr_poc.datasets.synthetic import generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("synthetic"), utterances=60, seed=1, progress=False)
