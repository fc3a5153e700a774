"""`asr-poc dashboard`: Voila on 127.0.0.1 serving the dashboard notebook without its code."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from asr_poc.config import REPO_ROOT
from asr_poc.ui.dashboard import find_root
from asr_poc.ui.serve import NOTEBOOK, free_port, voila_command


def test_voila_command_binds_localhost_and_hides_code():
    command = voila_command(8866)
    assert str(NOTEBOOK) in command and "--Voila.ip=127.0.0.1" in command and "--port=8866" in command
    assert "--strip_sources=True" in command and "--no-browser" in command and "--Voila.port_retries=0" in command


def test_find_root_prefers_the_environment_then_the_project_above_notebooks(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ASR_POC_ROOT", str(tmp_path))
    assert find_root() == tmp_path.resolve()
    monkeypatch.delenv("ASR_POC_ROOT")
    assert find_root(REPO_ROOT / "notebooks") == REPO_ROOT
    assert find_root(tmp_path) == tmp_path.resolve()


def test_dashboard_command_serves_the_page_without_code(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "ASR_POC_ROOT": str(tmp_path)}
    env.pop("ASR_POC_CONFIG", None)
    server = subprocess.Popen([sys.executable, "-m", "asr_poc", "dashboard", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, page = time.monotonic() + 180, ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=170) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page, f"no page; server said: {server.stdout.read().decode()[-2000:] if server.poll() is not None else ''}"
        assert "application/vnd.jupyter.widget-view+json" in page, "the dashboard's widgets are on the page"
        assert "from asr_poc.ui.dashboard import dashboard" not in page, "code cells are not shown"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
