"""Serve `notebooks/dashboard.ipynb` with Voila on 127.0.0.1, without its code cells (`asr-poc dashboard`)."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Optional

from ..config import REPO_ROOT, project_root

NOTEBOOK = REPO_ROOT / "notebooks" / "dashboard.ipynb"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def voila_command(port: int = 8866, notebook: Path = NOTEBOOK, ip: str = "127.0.0.1",
                  open_browser: bool = False) -> list[str]:
    """The Voila command line: one notebook, sources stripped, a fixed port (fail rather than pick another)."""
    command = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={ip}",
               "--Voila.port_retries=0", "--strip_sources=True", "--theme=light"]
    return command + ([] if open_browser else ["--no-browser"])


def voila_env(root: Optional[Path] = None, config: Optional[str] = None) -> dict:
    """The environment for Voila and its kernels: ASR_POC_ROOT set, so runs and data are found from any folder,
    and ASR_POC_CONFIG when a config file is given."""
    env = {**os.environ, "ASR_POC_ROOT": str(Path(root or project_root()).resolve())}
    if config:
        env["ASR_POC_CONFIG"] = str(Path(config).resolve())
    return env


def serve(port: int = 8866, root: Optional[Path] = None, open_browser: bool = False,
          config: Optional[str] = None) -> int:
    """Replace this process with Voila (it serves until Ctrl-C); returns only on a problem found before."""
    if not NOTEBOOK.is_file():
        print(f"error: {NOTEBOOK} not found", file=sys.stderr)
        return 1
    if config and not Path(config).is_file():
        print(f"error: config file {config} not found", file=sys.stderr)
        return 2
    env = voila_env(root, config)
    print(f"asr-poc dashboard: http://127.0.0.1:{port}/  (runs and data under {env['ASR_POC_ROOT']}; Ctrl-C stops "
          f"the server, not the training runs)", flush=True)
    command = voila_command(port, open_browser=open_browser)
    os.execve(command[0], command, env)  # become Voila: Ctrl-C and SIGTERM reach it directly
