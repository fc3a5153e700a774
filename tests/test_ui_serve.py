"""`asr-poc dashboard`: Voila on 127.0.0.1 serving the dashboard notebook without its code, behind a token, answering
only allowed Host names and same-origin websockets, and culling kernels no page is connected to."""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
import requests

from asr_poc.paths import REPO_ROOT
from asr_poc.paths import project_root as find_root
from asr_poc.ui.serve import (NOTEBOOK, TOKEN_ENV, WEBSOCKET_MAX_MESSAGE_BYTES, allowed_hosts, free_port,
                              voila_command, voila_config, voila_env)
from asr_poc.ui.test_panel import MAX_SECONDS, MAX_UPLOAD_BYTES
from conftest import wait_for
from served_site import served

TOKEN = "test-token-0123456789abcdef"


def test_voila_command_binds_localhost_and_carries_no_token(monkeypatch):
    command = voila_command(8866, hosts=["dash.example"])
    assert str(NOTEBOOK) in command and "--ip=127.0.0.1" in command and "--port=8866" in command
    assert "--allow-host=dash.example" in command and "--open" not in command
    env = voila_env(token=TOKEN)
    assert env[TOKEN_ENV] == TOKEN and not any(TOKEN in part for part in command), "the token is not in `ps`"
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert voila_env()[TOKEN_ENV] == "from-the-environment"
    monkeypatch.delenv(TOKEN_ENV)
    first, second = voila_env()[TOKEN_ENV], voila_env()[TOKEN_ENV]
    assert len(first) >= 32 and first != second, "a new random token when none is given"


def test_voila_config_checks_hosts_hides_code_and_takes_uploads_up_to_the_limit():
    config = voila_config(8866, "127.0.0.1", TOKEN, allowed_hosts(["dash.example"]))
    settings = config.Voila.tornado_settings
    assert config.Voila.token == TOKEN and config.VoilaConfiguration.strip_sources is True
    assert settings["allow_remote_access"] is False
    assert set(settings["local_hostnames"]) == {"localhost", "127.0.0.1", "::1", "dash.example"}
    assert config.MappingKernelManager.cull_idle_timeout > 0
    assert config.VoilaConfiguration.multi_kernel_manager_class.endswith("PageKernelManager")
    # an upload travels as one websocket message: the limit must leave room for the message around the file
    assert WEBSOCKET_MAX_MESSAGE_BYTES >= MAX_UPLOAD_BYTES + 1024 * 1024
    assert MAX_UPLOAD_BYTES >= MAX_SECONDS * 48000 * 2 * 4, "the Test tab's maximum seconds fit, even as float WAV"
    with pytest.raises(ValueError, match="never served without"):
        voila_config(8866, "127.0.0.1", "", ["localhost"])


def test_allowed_hosts_from_the_environment(monkeypatch):
    monkeypatch.setenv("ASR_POC_ALLOWED_HOSTS", "a.example, b.example")
    assert set(allowed_hosts()) == {"localhost", "127.0.0.1", "::1", "a.example", "b.example"}
    monkeypatch.delenv("ASR_POC_ALLOWED_HOSTS")
    assert set(allowed_hosts()) == {"localhost", "127.0.0.1", "::1"}


def test_find_root_prefers_the_environment_then_the_project_above_notebooks(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ASR_POC_ROOT", str(tmp_path))
    assert find_root() == tmp_path.resolve()
    monkeypatch.delenv("ASR_POC_ROOT")
    assert find_root(REPO_ROOT / "notebooks") == REPO_ROOT
    assert find_root(tmp_path) == tmp_path.resolve()


def test_the_server_refuses_to_start_without_a_token(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    result = subprocess.run([sys.executable, "-m", "asr_poc.ui.serve", f"--port={free_port()}"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "never served without a token" in result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """`asr-poc dashboard` with a token from the environment, one extra allowed host and a 3-second cull."""
    root = tmp_path_factory.mktemp("serve-root")
    port = free_port()
    env = {**os.environ, "ASR_POC_ROOT": str(root), TOKEN_ENV: TOKEN}
    env.pop("ASR_POC_CONFIG", None)
    log = root / "server.log"
    command = [sys.executable, "-m", "asr_poc", "dashboard", "--port", str(port), "--allow-host", "dash.example",
               "--cull-after", "3"]
    with served(command, env, log, port) as process:
        yield {"base": f"http://127.0.0.1:{port}", "port": port, "log": log, "pid": process.pid}


def test_the_url_with_the_token_is_printed(server):
    assert f"http://127.0.0.1:{server['port']}/?token={TOKEN}" in server["log"].read_text()


def test_no_token_or_a_wrong_one_gets_the_login_page_and_no_kernel(server):
    for url in (server["base"] + "/", server["base"] + "/?token=wrong"):
        response = requests.get(url, allow_redirects=False, timeout=30)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert requests.get(server["base"] + "/api/kernels/00000000-0000-0000-0000-000000000000",
                        timeout=30).status_code == 403
    assert "Kernel started" not in server["log"].read_text()


def test_a_foreign_host_header_is_refused_even_with_the_token(server):
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends `Host: evil.example`."""
    for host in ("evil.example", f"evil.example:{server['port']}"):
        response = requests.get(f"{server['base']}/?token={TOKEN}", headers={"Host": host}, timeout=30)
        assert response.status_code == 403
    allowed = requests.get(server["base"] + "/", headers={"Host": f"dash.example:{server['port']}"},
                           allow_redirects=False, timeout=30)
    assert allowed.status_code == 302, "a configured host gets the login redirect, not a refusal"


async def open_channels(server, kernel_id: str, cookies: dict, origin: str):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(f"ws://127.0.0.1:{server['port']}/api/kernels/{kernel_id}/channels?session_id=test",
                          headers={"Origin": origin, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    connection = await websocket_connect(request)
    connection.close()


def test_the_token_opens_the_page_and_a_foreign_origin_cannot_reach_its_kernel(server):
    session = requests.Session()
    response = session.get(f"{server['base']}/?token={TOKEN}", timeout=170)
    assert response.status_code == 200
    assert "application/vnd.jupyter.widget-view+json" in response.text, "the dashboard's widgets are on the page"
    assert "from asr_poc.ui.dashboard import dashboard" not in response.text, "code cells are not shown"
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', response.text).group(1)
    cookies = session.cookies.get_dict()
    assert cookies, "the token was exchanged for a login cookie"

    from tornado.httpclient import HTTPClientError

    # cross-site websocket hijacking: the browser would send the cookie, but the Origin is another site's
    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(open_channels(server, kernel_id, cookies, "http://evil.example"))
    assert refused.value.code == 403
    asyncio.run(open_channels(server, kernel_id, cookies, server["base"]))  # the page's own origin connects
    kernel_url = f"{server['base']}/api/kernels/{kernel_id}"
    assert session.get(kernel_url, headers={"Origin": "http://evil.example"}, timeout=30).status_code == 404, \
        "an XHR from another origin is refused (jupyter_server answers 404)"
    kernels = [p for p in psutil.Process(server["pid"]).children(recursive=True)
               if any("ipykernel" in part for part in p.cmdline())]
    assert kernels and all(TOKEN_ENV not in k.environ() for k in kernels), "kernels never see the token"
    # nothing is connected now: the kernel is culled after --cull-after 3 s (checked every second)
    assert session.get(kernel_url, timeout=30).status_code == 200
    wait_for(lambda: session.get(kernel_url, timeout=30).status_code == 404, 30, "the unconnected kernel to be culled")


def test_an_upload_over_the_limit_gets_a_clear_message_and_is_not_decoded(tmp_path: Path, monkeypatch):
    from asr_poc.ui import test_panel

    monkeypatch.setattr(test_panel, "MAX_UPLOAD_BYTES", 1000)
    panel = test_panel.TestPanel(tmp_path, preload=False)
    try:
        monkeypatch.setattr(panel, "submit", lambda *a: pytest.fail("an over-size upload must not be decoded"))
        panel.upload.value = ({"name": "big.wav", "type": "audio/wav", "size": 2048, "last_modified": datetime.now(timezone.utc),
                               "content": memoryview(b"\0" * 2048)},)
        assert "big.wav</code> cannot be used: it is 0.0 MiB; uploads are limited to 0 MiB" in panel.message.value
        assert panel.upload.value == (), "the same file can be chosen again"
    finally:
        panel.close()


def test_compose_requires_tokens_from_the_environment_and_publishes_on_localhost():
    import yaml

    compose = yaml.safe_load((REPO_ROOT / "docker" / "compose.yml").read_text())
    for name, variable in (("jupyterlab", "JUPYTER_TOKEN"), ("dashboard", TOKEN_ENV)):
        service = compose["services"][name]
        assert service["environment"][variable].startswith("${" + variable + ":?"), "required, no default"
        assert "token" not in service["command"].lower(), "no token on a command line"
        assert all(port.startswith("${BIND_ADDRESS:-127.0.0.1}:") for port in service["ports"])
    assert "asr_poc dashboard" in compose["services"]["dashboard"]["command"], "the dashboard's checks apply"


LIGHT_PAGE = """
import builtins, os, sys, traceback
os.environ["ASR_POC_ROOT"] = sys.argv[1]
importer = []
real_import = builtins.__import__
def watch(name, *args, **kwargs):
    if name.split(".")[0] == "torch" and "torch" not in sys.modules and not importer:
        importer.extend(f"{f.filename}:{f.lineno}" for f in traceback.extract_stack() if "asr_poc" in f.filename)
    return real_import(name, *args, **kwargs)
builtins.__import__ = watch
from asr_poc.ui.dashboard import dashboard
page = dashboard()
page.tabs.selected_index = 1  # the Runs tab too
print(" <- ".join(reversed(importer)) or "no torch")
"""


def test_building_the_dashboard_does_not_import_torch(tmp_path: Path):
    """A page that is only looked at stays light: torch (about 700 MB) loads when the Test tab uses a model."""
    result = subprocess.run([sys.executable, "-c", LIGHT_PAGE, str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "no torch", f"torch imported by {result.stdout.strip()}"
