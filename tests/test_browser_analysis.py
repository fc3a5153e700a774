"""The error panel (Runs tab) and the Data tab in the served dashboard (Voila, headless Chromium): they render the
coloured differences and the utterances, play the picked audio, and log no errors. No training: the runs' details
files are written directly, so this needs only the small corpus."""
from __future__ import annotations

from pathlib import Path

import pytest

from asr_poc.analysis import build_details, details_path, write_details
from asr_poc.runs import Run
from asr_poc.ui.serve import TOKEN_ENV, free_port, voila_command, voila_env
from conftest import tiny_config
from served_site import served
from test_browser_dashboard import ARTIFACTS, Page, browser, playwright_sync  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def analysis_site(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("analysis-root")
    (root / "data").mkdir()
    (root / "data" / "synthetic").symlink_to(small_corpus, target_is_directory=True)
    run = Run.create(tiny_config(small_corpus, root / "checkpoints"))
    rows = [r.split("|") for r in (small_corpus / "metadata.csv").read_text().splitlines()[:5]]
    ids, refs = [r[0] for r in rows], [r[2] for r in rows]
    hyps = [" ".join(ref.split()[1:]) + " extra" for ref in refs]  # the first word dropped, a word added
    write_details(details_path(run.path / "best.pt", "synthetic", "test"), build_details(
        {"checkpoint": str(run.path / "best.pt"), "dataset": "synthetic", "split": "test"}, ids, refs, hyps,
        audio={i: str(small_corpus / "wavs" / f"{i}.wav") for i in ids}))
    port = free_port()
    env = voila_env(root, None)
    with served(voila_command(port), env, root / "voila.log", port):
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"url": f"http://127.0.0.1:{port}/?token={env[TOKEN_ENV]}"}


def test_error_panel_and_data_tab_render_and_play(analysis_site, browser):  # noqa: F811 (fixture)
    page = Page(browser, analysis_site["url"]).open()
    try:
        page.tab("Runs")
        page.page.wait_for_selector(".asr-error-table .asr-error-row", timeout=60_000)
        assert page.page.locator(".asr-error-table .asr-del").count() == 5, "each row's dropped first word"
        assert page.page.locator(".asr-error-table .asr-ins:has-text('extra')").count() == 5
        page.page.locator(".asr-error-panel select").nth(3).select_option(index=1)
        page.page.wait_for_function("() => document.querySelector('.asr-error-panel audio')?.duration > 0.3",
                                    timeout=30_000)
        page.page.locator(".asr-error-panel").screenshot(path=str(ARTIFACTS / "dashboard-errors.png"))

        page.tab("Data")
        page.page.wait_for_selector(".asr-data-table .asr-data-row", timeout=120_000)
        assert "utterances" in page.text(".asr-data-browser")
        assert page.page.locator(".asr-data-browser .bqplot rect.bar").count() > 0, "the duration histogram"
        page.page.locator(".asr-data-browser select").nth(2).select_option(index=1)
        page.page.wait_for_function("() => document.querySelector('.asr-data-browser audio')?.duration > 0.3",
                                    timeout=30_000)
        page.page.locator(".asr-data-browser").screenshot(path=str(ARTIFACTS / "dashboard-data.png"))
        assert page.foreign == [] and page.errors == []
    finally:
        page.close()
