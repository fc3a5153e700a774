"""A dashboard server for the browser and serving tests: started in its own session, awaited, always stopped."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Iterator, Sequence

import requests

from asr_poc.paths import REPO_ROOT
from conftest import wait_for


@contextlib.contextmanager
def served(command: Sequence[str], env: dict, log: Path, port: int) -> Iterator[subprocess.Popen]:
    """Run `command` (Voila or `asr-poc dashboard`) with its output in `log`; yield once its login page answers on
    `port`; then stop the whole process group (SIGTERM, SIGKILL after 20 s)."""
    with open(log, "wb") as out:
        server = subprocess.Popen(list(command), env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)

        def up() -> bool:
            assert server.poll() is None, f"the server exited: {log.read_text()[-2000:]}"
            try:
                return requests.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        try:
            wait_for(up, 60, "the server to listen")
            yield server
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(20)
