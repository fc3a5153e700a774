"""Shared test fixtures: the corpora, the trained runs (each trained once per session), the process's threads."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def share_the_machine():
    """Torch threads for this test process as every training process chooses them (`training.threads: auto`,
    asr_poc/threads.py): the cores other processes leave free when the session starts, never more than torch's own
    count. On a quiet machine nothing changes; beside a busy core (another run on a shared machine) torch's two
    threads kept 11-30% of their speed (benchmarks/README.md), so the tests that train in this process take one.
    Chosen once: the count stays the same for the whole session, as torch's default did."""
    import torch

    from asr_poc.threads import busy_cores, choose_threads, cpu_count

    wanted = min(torch.get_num_threads(), choose_threads(cpu_count(), busy_cores()))
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)
    yield


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


GRAMMAR_ONLY = 0.0  # the test corpora keep the grammar's sentences: the learning tests' thresholds were set on them


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-utterance synthetic corpus (seed 1) in the LJSpeech layout, generated once per test session."""
    from asr_poc.datasets.synthetic import generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("synthetic"), utterances=60, seed=1, progress=False,
                           english_share=GRAMMAR_ONLY)


# A conformer small enough that a step takes a few milliseconds: for tests of the run machinery, not of learning.
TINY_MODEL = ["models.conformer.encoder_dim=32", "models.conformer.num_heads=2", "models.conformer.num_layers=1",
              "models.conformer.ffn_dim=64", "models.conformer.kernel_size=3", "models.conformer.subsampling=8"]


# The default `training.extra_eval` scores data/real-check and data/recordings of the working directory after every
# evaluation when they exist (2-7 s a tiny run on a developer's machine, nothing on a clean one): the suite's runs
# do not read the developer's data. Tests of extra_eval name their sets.
NO_EXTRA_EVAL = "training.extra_eval=[]"


def tiny_config(corpus: Path, root: Path, *overrides: str) -> dict:
    """A validated config that trains the tiny conformer on `corpus`, its runs under `root`."""
    from asr_poc.config import load_config

    return load_config(None, [f"datasets.synthetic.path={corpus}", f"checkpoint_dir={root}", "training.batch_size=8",
                              "training.eval_utterances=0", "training.warmup_steps=2", "datasets.synthetic.augment=null",
                              NO_EXTRA_EVAL, *TINY_MODEL, *overrides])


def copy_run(run, root: Path):
    """A copy of `run`'s folder under `root`, for a test that changes it or adds runs beside it."""
    from asr_poc.runs import Run

    root.mkdir(parents=True, exist_ok=True)
    return Run(shutil.copytree(run.path, root / run.id))


@pytest.fixture(scope="session")
def tiny_trained_run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny conformer trained for 3 steps, once per test session: its last.pt (no dev evaluation, no best.pt)
    is a checkpoint to load, transcribe with, list or adapt from. Tests use `tiny_run`, a copy per module."""
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train

    run = Run.create(tiny_config(small_corpus, tmp_path_factory.mktemp("tiny-run"), "training.max_steps=3"))
    assert train(run)["state"] == "finished"
    return run


@pytest.fixture(scope="module")
def tiny_run(tiny_trained_run, tmp_path_factory: pytest.TempPathFactory):
    """This module's copy of the session's tiny trained run, alone in a runs folder of its own: a module's tests may
    add runs beside it without another module seeing them."""
    return copy_run(tiny_trained_run, tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def learning_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """500 synthetic utterances (seed 0): enough voices for a model to generalise to held-out ones."""
    from asr_poc.datasets.synthetic import generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("learning"), utterances=500, seed=0, progress=False,
                           english_share=GRAMMAR_ONLY)


LEARNING_STEPS = 300


@pytest.fixture(scope="session")
def trained_run(learning_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """An xs conformer trained for LEARNING_STEPS steps (about two minutes on 2 cores), once per test session.

    Its best.pt transcribes espeak-ng speech roughly; other tests use it wherever a trained model is needed.
    """
    from asr_poc.config import load_config
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train

    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, [f"datasets.synthetic.path={learning_corpus}", f"checkpoint_dir={root}",
                             f"training.max_steps={LEARNING_STEPS}", "training.eval_utterances=25",
                             "training.warmup_steps=60", "training.learning_rate=0.003", "training.seed=0",
                             "training.spec_augment=false",  # SpecAugment pays off later than 300 steps
                             "datasets.synthetic.augment=null",  # and so does audio augmentation
                             NO_EXTRA_EVAL])
    run = Run.create(cfg)
    status = train(run)
    assert status["state"] == "finished", status
    return run


def wait_for(predicate, timeout: float, what: str):
    """Poll `predicate` until it returns something truthy (and return that), or fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
