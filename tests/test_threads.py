"""Thread settings for training beside other work (asr_poc/threads.py): the count chosen from the cores others keep
busy, a busy core seen as busy, the settings in force in a background run's worker process (OpenMP environment
set before torch is imported, torch's thread count, niceness), and one decoding thread in the page while a run trains."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from asr_poc import threads
from asr_poc.bench.sharing import BusyLoop
from asr_poc.runs import Run
from asr_poc.training.launcher import start_run
from conftest import tiny_config


@pytest.mark.parametrize("cores, busy, expected", [(2, 0.0, 2), (2, 0.3, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 1.9, 1),
                                                   (2, 5.0, 1), (8, 2.2, 6), (1, 0.0, 1)])
def test_threads_are_the_cores_others_leave_free(cores, busy, expected):
    assert threads.choose_threads(cores, busy) == expected


def test_a_busy_core_is_seen_as_busy():
    with BusyLoop():
        busy = threads.busy_cores(0.5)
    assert busy >= 0.6, busy  # the loop's core (other processes may add more, never less)


def test_a_background_run_applies_the_settings_in_its_worker_process(small_corpus, tmp_path):
    cfg = tiny_config(small_corpus, tmp_path, "training.max_steps=1", "training.num_threads=1",
                      "training.extra_eval=[]", "training.nice=3")
    assert cfg["training"]["threads"] == "auto"
    parent_policy = os.environ.get("OMP_WAIT_POLICY")
    handle = start_run(Run.create(cfg), background="process")
    status = handle.wait(timeout=180)
    assert status.get("state") == "finished", status
    logged = [e["threads"] for e in handle.run.events("log") if "threads" in e]
    assert len(logged) == 1
    settings = logged[0]
    assert settings["env_before_torch"] is True  # OpenMP read the passive wait policy when torch loaded it
    assert settings["omp_wait_policy"] == "PASSIVE" and settings["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert settings["torch_threads"] == 1 and settings["interop_threads"] == 1
    assert settings["nice"] == os.nice(0) + 3
    if os.path.exists("/proc/self/autogroup"):  # the worker's session has an autogroup of its own: niced too
        assert settings["autogroup_nice"] >= 3
    assert os.environ.get("OMP_WAIT_POLICY") == parent_policy  # the worker's environment, not this process's


def test_auto_threads_in_a_fresh_process_beside_a_busy_core(tmp_path):
    """`prepare_process('auto')` before torch: one thread on a 2-core machine whose other core is busy."""
    code = ("import json, sys; from asr_poc.threads import prepare_process; s = prepare_process('auto'); "
            "import torch; s['seen'] = torch.get_num_threads(); print(json.dumps(s))")
    with BusyLoop():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if k not in threads.PASSIVE_ENV})
    settings = json.loads(out.stdout.strip().splitlines()[-1])
    assert settings["env_before_torch"] and settings["omp_wait_policy"] == "PASSIVE"
    assert settings["busy_cores_at_start"] >= 0.6
    assert settings["seen"] == settings["torch_threads"] == threads.choose_threads(threads.cpu_count(),
                                                                                   settings["busy_cores_at_start"])
    assert settings["seen"] <= max(1, threads.cpu_count() - 1)


def test_policy_torch_leaves_torch_alone():
    before = torch.get_num_threads()
    settings = threads.prepare_process("torch")
    assert settings["torch_threads"] == before and settings["env"] == {} and settings["nice"] is None
    assert settings["env_before_torch"] is False  # torch is imported in this test process: said, not hidden
    assert "torch was imported first" in threads.describe(settings)


def test_the_page_decodes_with_one_thread_while_a_run_trains(small_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "TRAINING_CHECK_SECONDS", 0.0)
    default = torch.get_num_threads()
    run = Run.create(tiny_config(small_corpus, tmp_path), root=tmp_path)
    try:
        assert threads.set_decode_threads(tmp_path) == default
        run.write_status(state="running", pid=os.getpid())
        assert threads.set_decode_threads(tmp_path) == 1 and torch.get_num_threads() == 1
        run.write_status(state="finished")
        assert threads.set_decode_threads(tmp_path) == default and torch.get_num_threads() == default
    finally:
        torch.set_num_threads(default)


@pytest.mark.parametrize("module", ["asr_poc.training.worker", "asr_poc.bench.training"])
def test_the_training_processes_entry_points_do_not_import_torch_before_the_settings(module):
    """Both entry points apply the thread settings before they import torch: importing them must not import it."""
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_a_foreground_cli_run_applies_the_settings_before_torch(small_corpus, tmp_path):
    """`asr-poc train` without --background trains in its own process: it applies `training.threads` there, with the
    OpenMP environment set before torch loads (torch's spinning defaults kept 10% beside a busy core)."""
    config = tmp_path / "tiny.yaml"
    cfg = tiny_config(small_corpus, tmp_path / "runs", "training.max_steps=1", "training.num_threads=1",
                      "training.extra_eval=[]")
    import yaml

    config.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k not in threads.PASSIVE_ENV}
    out = subprocess.run([sys.executable, "-m", "asr_poc", "train", "--config", str(config)], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    run = Run.open(out.stdout.strip().splitlines()[0])
    logged = [e["threads"] for e in run.events("log") if "threads" in e]
    assert len(logged) == 1, logged
    assert logged[0]["env_before_torch"] is True and logged[0]["omp_wait_policy"] == "PASSIVE"
    assert logged[0]["torch_threads"] == 1 and logged[0]["interop_threads"] == 1
