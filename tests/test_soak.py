"""Soak test, not in the default run: a long training watched by two browser pages, its process killed with
SIGKILL and resumed three times; nothing may be lost (steps, events, curves on both pages).

    ASR_POC_SOAK_MINUTES=30 .venv/bin/python -m pytest -q tests/test_soak.py

It trains the default xs conformer on the small test corpus, writing last.pt every `CHECKPOINT_MINUTES`, so a
kill loses at most that much; each resume must go on from the newest checkpoint's step.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from asr_poc.checkpoint_io import load_checkpoint_file
from asr_poc.config import load_config
from asr_poc.training.launcher import start_run
from asr_poc.runs import Run
from conftest import tiny_config, wait_for
from test_browser_dashboard import Page, browser, playwright_sync, site  # noqa: F401 (fixtures)

SOAK_MINUTES = float(os.environ.get("ASR_POC_SOAK_MINUTES", "0") or 0)
KILLS = 3
CHECKPOINT_MINUTES = min(1.0, SOAK_MINUTES / 20) if SOAK_MINUTES else 1.0

pytestmark = [pytest.mark.browser, pytest.mark.soak,
              pytest.mark.skipif(not SOAK_MINUTES, reason="soak test: set ASR_POC_SOAK_MINUTES (e.g. 30) to run it")]


@pytest.fixture(scope="module")
def trained_run(small_corpus, tmp_path_factory):
    """The dashboard fixture's run to show: two steps of the tiny model are enough here (no learning needed)."""
    from asr_poc.training.trainer import train

    run = Run.create(tiny_config(small_corpus, tmp_path_factory.mktemp("soak-runs"), "training.max_steps=2",
                                 "training.extra_eval=[]"))
    assert train(run)["state"] == "finished"
    return run


def step_events(run: Run) -> list[int]:
    return [e["step"] for e in run.events("step")]


def both_running(pages: list[Page]) -> bool:
    return all(p.page.locator(".asr-status:has-text('running')").count() for p in pages)


def test_training_survives_three_kills_with_two_pages_watching(site, browser):  # noqa: F811
    segment = SOAK_MINUTES * 60 / (KILLS + 1)
    cfg = load_config(None, [f"datasets.synthetic.path={site['root'] / 'data' / 'synthetic'}",
                             f"checkpoint_dir={site['runs']}", "training.batch_size=8", "training.epochs=100000",
                             "training.eval_utterances=4", "training.extra_eval=[]", "training.num_threads=1",
                             f"training.checkpoint_minutes={CHECKPOINT_MINUTES}",
                             f"training.max_minutes={2 * SOAK_MINUTES}"])  # the last resume gets a segment
    run = Run.create(cfg, root=site["runs"])
    start_run(run, background="process", root=site["runs"])
    wait_for(lambda: step_events(run), 120, "the first step")
    pages = [Page(browser, site["url"]).open() for _ in range(2)]
    try:
        wait_for(lambda: both_running(pages), 120, "both pages to show the run")
        for kill in range(KILLS):
            segment_start = max(step_events(run))
            time.sleep(segment)
            points_before = [p.loss_points() for p in pages]
            seen = max(step_events(run))
            steps_per_second = (seen - segment_start) / segment
            os.kill(int(run.status["pid"]), signal.SIGKILL)
            status = wait_for(lambda: run.status["state"] == "interrupted" and run.status, 90, "the run to be "
                              "seen as interrupted")
            resumed_from = status["step"]
            assert resumed_from == load_checkpoint_file(run.last_checkpoint)["step"], "the status keeps the true step"
            allowed = steps_per_second * (CHECKPOINT_MINUTES * 60 + 15) + 5  # one checkpoint interval, and slack
            assert seen - resumed_from <= allowed, f"a kill lost {seen - resumed_from} steps (allowed {allowed:.0f})"
            if kill == KILLS - 1:
                run.override_training([f"training.max_minutes={segment / 60:.3f}"])

            offset = len(step_events(run))
            start_run(run, background="process", resume=True, root=run.root)
            first_after = wait_for(lambda: step_events(run)[offset:], 120, "a step after the resume")[0]
            assert first_after == resumed_from + 1, "a resume goes on from the checkpoint's step"
            wait_for(lambda: both_running(pages), 120, "both pages to show the resumed run")
            for page, before in zip(pages, points_before):
                wait_for(lambda: page.loss_points() > before or (before >= 1900 and page.loss_points() >= 1900),
                         120, "the page's loss curve to go on after the resume")

        final = wait_for(lambda: run.status["state"] in ("finished", "failed") and run.status,
                         segment + 180, "the last segment to finish")
        assert final["state"] == "finished", final
        steps = set(step_events(run))
        assert steps == set(range(1, max(steps) + 1)), "every step up to the last is in events.jsonl"
        assert load_checkpoint_file(run.last_checkpoint)["step"] == max(steps) == final["step"]
        for page in pages:
            page.page.wait_for_selector(".asr-status:has-text('finished')", timeout=60_000)
            assert page.errors == [], page.errors
    finally:
        for page in pages:
            page.close()
