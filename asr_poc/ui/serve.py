"""Serve `notebooks/dashboard.ipynb` with Voila, without its code cells, behind a token (`asr-poc dashboard`).

Like Jupyter: every request needs the token (in the URL once, then a cookie), the `Host` header must name an allowed
host (DNS rebinding), and websocket/XHR requests from another origin are refused. These are jupyter_server's own
checks (`IdentityProvider.token`, `allow_remote_access=False` + `local_hostnames`, same-origin `check_origin`);
this module only configures them. Page kernels are culled once no page is connected (`PageKernelManager`).

`asr-poc dashboard` re-executes itself as `python -m asr_poc.ui.serve ...`, which starts Voila in-process with a
typed traitlets config; the token travels in the environment ($ASR_POC_TOKEN), never on a command line, and is
removed from the environment before kernels start.
"""
from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..app.settings import DASHBOARD_NOTEBOOK, project_root

NOTEBOOK = DASHBOARD_NOTEBOOK  # package data: found in a wheel install as in a checkout
TOKEN_ENV = "ASR_POC_TOKEN"
HOSTS_ENV = "ASR_POC_ALLOWED_HOSTS"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
# Uploads travel as one websocket message (ipywidgets FileUpload); tornado's default cap is 10 MiB. This must stay
# above the Test tab's upload limit (test_panel.MAX_UPLOAD_BYTES) so that a file just over it gets a message.
WEBSOCKET_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
CULL_AFTER_SECONDS = 300.0    # a page kernel with no page connected for this long is shut down
CULL_INTERVAL_SECONDS = 60.0  # how often the server looks
# Our Voila template (Voila's lab template without its CDN stylesheets): found through $JUPYTER_PATH.
TEMPLATE = "asr-poc"
TEMPLATE_ROOT = Path(__file__).resolve().parent / "jupyter"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def new_token() -> str:
    """A random token, as Jupyter makes them (48 hex digits)."""
    return secrets.token_hex(24)


def allowed_hosts(hosts: Optional[Sequence[str]] = None) -> list[str]:
    """The `Host` names the server answers: `hosts`, else $ASR_POC_ALLOWED_HOSTS (comma-separated), else localhost.
    Loopback addresses are always allowed; `*` allows any host (only behind a proxy that checks it)."""
    if not hosts:
        hosts = [h for h in os.environ.get(HOSTS_ENV, "").replace(" ", "").split(",") if h]
    return sorted(set(hosts or DEFAULT_HOSTS) | set(DEFAULT_HOSTS))


def voila_config(port: int, ip: str, token: str, hosts: Sequence[str],
                 cull_after: float = CULL_AFTER_SECONDS, cull_interval: float = CULL_INTERVAL_SECONDS):
    """The traitlets config Voila starts with: token, host and origin checks, websocket size, kernel culling."""
    from traitlets.config import Config

    if not token:
        raise ValueError(f"no token: the dashboard is never served without one (set ${TOKEN_ENV})")
    c = Config()
    c.Voila.port, c.Voila.ip, c.Voila.port_retries, c.Voila.open_browser = port, ip, 0, False
    c.Voila.token = token
    c.Voila.tornado_settings = {
        "allow_remote_access": "*" in hosts,            # False: jupyter_server's check_host refuses other Hosts
        "local_hostnames": [h for h in hosts if h != "*"],
        "websocket_max_message_size": WEBSOCKET_MAX_MESSAGE_BYTES,
    }
    c.VoilaConfiguration.strip_sources = True
    c.VoilaConfiguration.theme = "light"
    c.VoilaConfiguration.template = TEMPLATE  # no request leaves the machine (see TEMPLATE_ROOT)
    c.VoilaConfiguration.file_allowlist = []  # /voila/files/ is not behind the token; the page needs no files
    c.VoilaConfiguration.multi_kernel_manager_class = "asr_poc.ui.kernels.PageKernelManager"
    c.MappingKernelManager.cull_idle_timeout = int(max(1, cull_after))
    c.MappingKernelManager.cull_interval = int(max(1, cull_interval))
    return c


def voila_command(port: int = 8866, notebook: Path = NOTEBOOK, ip: str = "127.0.0.1", open_browser: bool = False,
                  hosts: Optional[Sequence[str]] = None, cull_after: float = CULL_AFTER_SECONDS,
                  cull_interval: float = CULL_INTERVAL_SECONDS) -> list[str]:
    """The server's command line (no token in it: that comes from $ASR_POC_TOKEN, see `voila_env`)."""
    command = [sys.executable, "-m", "asr_poc.ui.serve", str(notebook), f"--port={port}", f"--ip={ip}",
               f"--cull-after={cull_after:g}", f"--cull-interval={cull_interval:g}"]
    command += [f"--allow-host={h}" for h in (hosts or [])]
    return command + (["--open"] if open_browser else [])


def voila_env(root: Optional[Path] = None, config: Optional[str] = None, token: Optional[str] = None) -> dict:
    """The environment for Voila and its kernels: ASR_POC_ROOT set, so runs and data are found from any folder,
    ASR_POC_CONFIG when a config file is given, and the token ($ASR_POC_TOKEN: given, inherited or new)."""
    env = {**os.environ, "ASR_POC_ROOT": str(Path(root or project_root()).resolve())}
    if config:
        env["ASR_POC_CONFIG"] = str(Path(config).resolve())
    env[TOKEN_ENV] = token or env.get(TOKEN_ENV) or new_token()
    return env


def dashboard_url(port: int, token: str, host: str = "127.0.0.1") -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/?token={token}"


def serve(port: int = 8866, root: Optional[Path] = None, open_browser: bool = False, config: Optional[str] = None,
          token: Optional[str] = None, ip: str = "127.0.0.1", hosts: Optional[Sequence[str]] = None,
          cull_after: float = CULL_AFTER_SECONDS) -> int:
    """Replace this process with the Voila server (it serves until Ctrl-C); returns only on a problem found before."""
    if not NOTEBOOK.is_file():
        print(f"error: {NOTEBOOK} not found", file=sys.stderr)
        return 1
    if config and not Path(config).is_file():
        print(f"error: config file {config} not found", file=sys.stderr)
        return 2
    env = voila_env(root, config, token)
    shown = "localhost" if ip in ("0.0.0.0", "::", "") else ip
    print(f"asr-poc dashboard: {dashboard_url(port, env[TOKEN_ENV], shown)}\n  (runs and data under "
          f"{env['ASR_POC_ROOT']}; hosts allowed: {', '.join(allowed_hosts(hosts))}; Ctrl-C stops the server, "
          f"not the training runs)", flush=True)
    command = voila_command(port, ip=ip, open_browser=open_browser, hosts=hosts, cull_after=cull_after,
                            cull_interval=min(CULL_INTERVAL_SECONDS, max(1.0, cull_after / 5)))
    os.execve(command[0], command, env)  # become the server: Ctrl-C and SIGTERM reach it directly


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m asr_poc.ui.serve NOTEBOOK --port N ...`: start Voila in this process (token from $ASR_POC_TOKEN)."""
    parser = argparse.ArgumentParser(prog="python -m asr_poc.ui.serve")
    parser.add_argument("notebook", nargs="?", default=str(NOTEBOOK))
    parser.add_argument("--port", type=int, default=8866)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--allow-host", action="append", default=[], dest="hosts")
    parser.add_argument("--cull-after", type=float, default=CULL_AFTER_SECONDS)
    parser.add_argument("--cull-interval", type=float, default=CULL_INTERVAL_SECONDS)
    parser.add_argument("--open", action="store_true")
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")  # popped: kernels and the training runs they start never see it
    if not token:
        print(f"error: ${TOKEN_ENV} is not set; the dashboard is never served without a token", file=sys.stderr)
        return 2
    from voila.app import Voila

    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(TEMPLATE_ROOT), *filter(None, [os.environ.get("JUPYTER_PATH")])])
    config = voila_config(args.port, args.ip, token, allowed_hosts(args.hosts),
                          args.cull_after, args.cull_interval)
    if args.open:  # Voila would open the URL without the token (it shows only tokens it generated)
        import threading
        import webbrowser

        shown = "localhost" if args.ip in ("0.0.0.0", "::", "") else args.ip
        threading.Timer(2.0, webbrowser.open, [dashboard_url(args.port, token, shown)]).start()
    Voila.launch_instance([args.notebook], config=config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
