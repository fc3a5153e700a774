"""The package carries its own defaults: a wheel holds configs/default.yaml and the dashboard notebook, and an
installed copy (not editable) loads its config and finds its notebook from any folder."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    (built,) = out.glob("asr_poc-*.whl")
    return built


def test_the_wheel_holds_the_configs_and_the_dashboard_notebook(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in (ROOT / "configs").glob("*.yaml"):
        assert f"asr_poc/configs/{config.name}" in names
    assert "asr_poc/notebooks/dashboard.ipynb" in names
    assert "asr_poc/notebooks/research.ipynb" not in names  # a researcher's notebook is not the package's
    with zipfile.ZipFile(wheel) as z:  # copies of the files, not the links of the checkout
        assert z.read("asr_poc/configs/default.yaml") == (ROOT / "configs" / "default.yaml").read_bytes()


def test_an_installed_wheel_loads_its_config_and_finds_its_notebook_from_another_folder(wheel: Path, tmp_path: Path):
    """Unpacked where nothing of the checkout is on the path (the working folder has no configs/ either)."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.yaml").write_text("training:\n  batch_size: 3\n")
    code = ("import asr_poc, asr_poc.config as c, asr_poc.ui.serve as s; "
            "cfg = c.load_config('mine.yaml', check_data=False); "
            "print(asr_poc.__file__, cfg['training']['batch_size'], s.NOTEBOOK.is_file(), s.NOTEBOOK)")
    env = {k: v for k, v in os.environ.items() if k != "ASR_POC_ROOT"}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    module, batch_size, found, notebook = result.stdout.split()
    assert module.startswith(str(site)), "the installed copy, not the checkout"
    assert batch_size == "3" and found == "True" and notebook.startswith(str(site))
