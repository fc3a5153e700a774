"""Page kernels are bounded: an idle page's kernel is light (no torch), a watched page keeps its kernel, and pages
that go away without an unload event (a crashed tab, a plain HTTP GET that never connects) lose theirs after the
cull interval. Kernel sizes and counts are read from the server's process tree."""
from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
import requests

from asr_poc.ui.serve import TOKEN_ENV, free_port, voila_command, voila_env
from conftest import wait_for
from served_site import served
from test_browser_dashboard import BASE_FLAGS, CHROMIUM, playwright_sync  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

CULL_AFTER, CULL_INTERVAL = 10, 1
IDLE_KERNEL_LIMIT_MB = 300
ABANDONED_PAGES, KERNELS_LEFT_AT_MOST = 20, 2


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """The dashboard server with a 10-second cull (checked every second) over an empty project folder."""
    root = tmp_path_factory.mktemp("culling-root")
    port = free_port()
    env = voila_env(root)
    env.pop("ASR_POC_CONFIG", None)
    command = voila_command(port, cull_after=CULL_AFTER, cull_interval=CULL_INTERVAL)
    with served(command, env, root / "voila.log", port) as server:
        yield {"url": f"http://127.0.0.1:{port}/?token={env[TOKEN_ENV]}", "server": psutil.Process(server.pid),
               "root": root}


def page_kernels(site) -> list[psutil.Process]:
    kernels = []
    for child in site["server"].children(recursive=True):
        try:
            if any("ipykernel" in part for part in child.cmdline()):
                kernels.append(child)
        except psutil.NoSuchProcess:
            pass
    return kernels


def holds_torch(kernel: psutil.Process) -> bool:
    return any("libtorch" in Path(m.path).name for m in kernel.memory_maps())


@pytest.fixture(scope="module")
def browser(playwright_sync):  # noqa: F811
    browser = playwright_sync.chromium.launch(executable_path=CHROMIUM, args=BASE_FLAGS)
    yield browser
    browser.close()


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # what the server sees of a crashed tab or a lost connection: the websocket goes, no kernel shutdown request comes
    context.route("**/voila/api/shutdown/**", lambda route: route.abort())
    page = context.new_page()
    page.goto(url, timeout=180_000)
    page.wait_for_selector(".asr-training-panel .asr-start", timeout=180_000)
    return context, page


def abandon(context, page) -> None:
    """End the page the way a crashed tab or a lost connection does: no unload handlers, no shutdown request."""
    page.close(run_before_unload=False)
    context.close()


def test_an_idle_page_kernel_is_light_and_kept_while_the_page_is_open(site, browser):
    wait_for(lambda: not page_kernels(site), CULL_AFTER + 30, "kernels of earlier pages to go")
    context, page = open_page(browser, site["url"])
    try:
        page.wait_for_timeout(3000)  # settled: the watcher threads run, nothing else happens
        kernels = page_kernels(site)
        assert len(kernels) == 1
        rss_mb = kernels[0].memory_info().rss / 2**20
        torch_loaded = holds_torch(kernels[0])
        print(f"idle page kernel: {rss_mb:.0f} MB RSS, torch loaded: {torch_loaded}")
        assert rss_mb < IDLE_KERNEL_LIMIT_MB, (f"an idle page kernel holds {rss_mb:.0f} MB"
                                               + (" (torch is loaded in it)" if torch_loaded else ""))
        # a watched page outlives the cull interval several times over, and still answers
        page.wait_for_timeout((CULL_AFTER + 3 * CULL_INTERVAL) * 1000)
        assert [k.pid for k in page_kernels(site)] == [kernels[0].pid], "the open page's kernel is kept"
        page.click(".lm-TabBar-tab:has-text('Runs')")
        page.wait_for_selector(".asr-run-browser", state="attached", timeout=30_000)  # the page still answers
    finally:
        abandon(context, page)


@pytest.mark.slow  # twenty page loads: 234 s on the 2-core machine at a load average of 11
def test_abandoned_pages_leave_at_most_two_kernels(site, browser):
    """Twenty pages: half opened in the browser and abandoned, half fetched with a plain GET that never connects."""
    most = 0
    start = time.monotonic()
    for i in range(ABANDONED_PAGES):
        if i % 2 == 0:
            context, page = open_page(browser, site["url"])
            abandon(context, page)
        else:
            response = requests.get(site["url"], timeout=180)
            assert response.status_code == 200 and "application/vnd.jupyter.widget-view+json" in response.text
        most = max(most, len(page_kernels(site)))
    took = time.monotonic() - start
    time.sleep(CULL_AFTER + 2 * CULL_INTERVAL + 1)
    left = page_kernels(site)
    print(f"{ABANDONED_PAGES} abandoned pages in {took:.0f} s: at most {most} kernels at once, {len(left)} left "
          f"{CULL_AFTER + 2 * CULL_INTERVAL + 1} s later (load average {os.getloadavg()[0]:.1f})")
    assert len(left) <= KERNELS_LEFT_AT_MOST
    assert most < ABANDONED_PAGES, "kernels were culled while the pages kept coming"
