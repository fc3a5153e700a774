#!/usr/bin/env bash
# Set up a fresh machine: system packages (apt-get, when missing and allowed), then the virtualenv .venv
# with asr-poc and its extras. Safe to run again: each step is skipped when already done.
#   scripts/setup.sh            # library + Jupyter UI + bench plots + test tools
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v g++ >/dev/null || need+=(g++)  # kenlm (PyPI) compiles from source
command -v festival >/dev/null || need+=(festival)  # + English voices recorded from people (synthetic corpus)
command -v flite >/dev/null || need+=(flite)  # two more ARCTIC speakers (the corpus's optional flite engine)
if command -v dpkg >/dev/null; then
  for voice in festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts; do
    dpkg -s "$voice" >/dev/null 2>&1 || need+=("$voice")
  done
fi
if [ "${ASR_POC_BROWSER_TESTS:-1}" = 1 ] && ! command -v chromium >/dev/null; then need+=(chromium); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing system packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "error: missing system packages: ${need[*]}" >&2
    echo "install them, e.g.: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.asr-poc-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing asr-poc into .venv (torch is large: a few minutes the first time)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[ui,bench,dev]"
  touch "$stamp"
fi
echo "== .venv ready"
