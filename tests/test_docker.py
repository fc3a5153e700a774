"""The Docker image installs what scripts/setup.sh and the README install, copies no bulk or secrets, runs as a
user, and compose has health checks and a CPU-only profile. Docker is not available here: the files are parsed."""
from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import yaml

from asr_poc.paths import REPO_ROOT

DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
COMPOSE = REPO_ROOT / "docker" / "compose.yml"
SETUP = REPO_ROOT / "scripts" / "setup.sh"
BROWSER_TEST_ONLY = {"chromium"}  # setup.sh installs it for the browser tests, the image has no use for it
IMAGE_ONLY = {"python3", "python3-venv", "python3-pip"}  # the image's Python; setup.sh uses the machine's


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


def shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line (split on && ; ||), as words; comments dropped."""
    words = shlex.split(run, comments=True)
    commands, current = [], []
    for word in words:
        if word in ("&&", "||", ";"):
            commands, current = commands + [current], []
        else:
            current.append(word.strip("()"))
    return [c for c in commands + [current] if c]


def dockerfile_commands() -> list[list[str]]:
    return [c for kind, args in instructions(DOCKERFILE) if kind == "RUN" for c in shell_commands(args)]


def apt_packages(commands: list[list[str]]) -> set[str]:
    return {w for c in commands if c[:2] == ["apt-get", "install"] for w in c[2:] if not w.startswith("-")}


def pip_installs(commands: list[list[str]]) -> list[list[str]]:
    return [[w for w in c[2:] if not w.startswith("-") or w == "-e"] for c in commands
            if c[:2] == ["pip", "install"] or c[1:3] == ["pip", "install"]]


def extras(spec: str) -> set[str]:
    match = re.search(r"\[([^\]]*)\]", spec)
    return set(match.group(1).split(",")) if match else set()


def setup_system_packages() -> set[str]:
    """Every package scripts/setup.sh may apt-get install: `need+=(...)` and its loop over the voices."""
    text = SETUP.read_text()
    packages = set(re.findall(r"need\+=\(([\w.+-]+)\)", text))
    for loop in re.findall(r"for \w+ in ([^;]+); do", text):
        packages |= set(loop.split())
    return packages


def setup_extras() -> set[str]:
    specs = re.findall(r"pip install [^\n]*-e \"?\.(\[[^\]]*\])", SETUP.read_text())
    assert len(specs) == 1, specs
    return extras(specs[0])


def test_the_image_installs_the_system_packages_of_setup_and_the_readme():
    setup = setup_system_packages()
    assert {"espeak-ng", "ffmpeg", "festival", "festvox-kallpc16k"} <= setup, "the parser reads setup.sh"
    image = apt_packages(dockerfile_commands())
    assert image - IMAGE_ONLY == setup - BROWSER_TEST_ONLY, "the image installs what setup.sh installs"
    readme = REPO_ROOT.joinpath("README.md").read_text()
    named = set(re.findall(r"`([\w.+-]+)`", readme.split("## Command line")[0]))
    assert setup - named == set(), "the README's set-up section names every system package setup.sh installs"


def test_the_image_installs_the_extras_and_pins_of_setup_and_pyproject():
    installs = pip_installs(dockerfile_commands())
    editable = [c[c.index("-e") + 1] for c in installs if "-e" in c]
    assert editable and extras(editable[0]) == setup_extras() - {"dev"}, "setup.sh's extras, less the test tools"
    import tomllib

    pins = {re.split(r"[=<>]", d)[0]: d for d in tomllib.loads(REPO_ROOT.joinpath("pyproject.toml").read_text())
            ["project"]["dependencies"] if "==" in d}
    pinned_in_image = [w for c in installs for w in c if "==" in w]
    assert pinned_in_image and all(pins.get(re.split(r"==", w)[0]) == w for w in pinned_in_image), \
        f"the image's pins {pinned_in_image} are pyproject.toml's {sorted(pins.values())}"


def test_the_image_runs_its_servers_as_a_user_not_root():
    steps = instructions(DOCKERFILE)
    users = [(i, args) for i, (kind, args) in enumerate(steps) if kind == "USER"]
    assert users and users[-1][1] not in ("root", "0"), "the last USER is not root"
    assert users[-1][0] < [i for i, (kind, _) in enumerate(steps) if kind == "CMD"][-1]
    for kind, args in steps[users[-1][0]:]:  # what runs as the user cannot need root
        assert not (kind == "RUN" and re.search(r"\b(apt-get|useradd|chown)\b", args)), args
    assert "--allow-root" not in DOCKERFILE.read_text() + COMPOSE.read_text()


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore matching: patterns are relative to the context root, `*` stays within a path component,
    `**` spans any number of them, and a folder that matches excludes everything under it."""
    def match(parts: list[str], pattern: list[str]) -> bool:
        if not pattern:
            return True  # the pattern matched a parent folder of the path
        if pattern[0] == "**":
            return any(match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and match(parts[1:], pattern[1:])

    return any(match(path.split("/"), p.strip("/").split("/")) for p in patterns)


def test_dockerignore_keeps_bulk_and_secrets_out_and_what_the_image_needs_in():
    patterns = [line.strip() for line in REPO_ROOT.joinpath(".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # (the matcher above knows no exceptions)
    for path in (".git/HEAD", ".venv/bin/python", "data/synthetic/wavs/syn-00001.wav", "checkpoints/run/best.pt",
                 "test-artifacts/dashboard-01-loaded.png", "asr_poc/__pycache__/cli.cpython-311.pyc",
                 "asr_poc.egg-info/PKG-INFO", "notebooks/.ipynb_checkpoints/x.ipynb"):
        assert ignored(path, patterns), f"{path} is kept out of the image"
    for path in ("pyproject.toml", "README.md", "asr_poc/cli.py", "asr_poc/data/real_check/wavs/cards1.wav",
                 "asr_poc/ui/jupyter/voila/templates/asr-poc/index.html.j2", "configs/default.yaml",
                 "notebooks/dashboard.ipynb", "scripts/setup.sh"):
        assert not ignored(path, patterns), f"{path} goes into the image"
    for kind, args in instructions(DOCKERFILE):  # what the Dockerfile copies by name exists and is not ignored
        if kind == "COPY":
            for source in [w for w in args.split() if not w.startswith("--")][:-1]:
                assert source == "." or (REPO_ROOT / source).exists() and not ignored(source, patterns), source


def test_compose_has_health_checks_and_a_cpu_only_profile():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    by_profile: dict[str, list[str]] = {}
    for name, service in services.items():
        (profile,) = service["profiles"]
        by_profile.setdefault(profile, []).append(name)
        gpu = "devices" in str(service.get("deploy", {}))
        assert gpu == (profile == "gpu"), f"{name}: a GPU reservation exactly in the gpu profile"
        port = service["ports"][0].rsplit(":", 1)[1]
        check = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in check and "python" in check, f"{name}: its health check asks its own port"
        assert f"--port {port}" in service["command"] or f"--port={port}" in service["command"]
        token = "ASR_POC_TOKEN" if "dashboard" in service["command"] else "JUPYTER_TOKEN"
        assert service["environment"][token].startswith("${" + token + ":?"), f"{name}: a token, no default"
        if "dashboard" in service["command"]:
            assert check.rstrip("')\" ").split(f":{port}")[1].startswith("/login"), \
                "the dashboard's check asks for the login page (a page itself would start a kernel)"
    assert sorted(by_profile) == ["cpu", "gpu"]
    for profile, names in by_profile.items():
        commands = sorted("dashboard" if "dashboard" in services[n]["command"] else "jupyter" for n in names)
        assert commands == ["dashboard", "jupyter"], f"profile {profile}: JupyterLab and the dashboard"
        assert len({services[n]["ports"][0] for n in names}) == len(names), f"profile {profile}: ports clash"
    cpu_build = services[by_profile["cpu"][0]]["build"]
    assert "cuda" not in str(cpu_build.get("args", {}).get("BASE_IMAGE", "cuda")), "the CPU image has no CUDA base"
