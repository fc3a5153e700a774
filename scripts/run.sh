#!/usr/bin/env bash
# `make run`: build the default offline corpus if it is missing, then serve the dashboard (Voila) on
# http://127.0.0.1:${PORT:-8866}/ until Ctrl-C, behind a token: the URL to open, with its token, is printed
# (set ASR_POC_TOKEN to choose the token). Training runs started from the page are separate processes and keep
# going after the server stops.
#
#   scripts/run.sh            the dashboard (PORT=8866 by default)
#   scripts/run.sh cli        the command-line tour instead: train for MINUTES (default 5), evaluate on voices it
#                             never heard and on real speech, and transcribe a held-out file
# Runs use CONFIG (default configs/whisper-finetune.yaml: Whisper tiny.en fine-tuned, real-check WER 0.085 after
# 10 minutes; CONFIG=configs/real-speech.yaml trains whisper-ctc, the CTC model that streams as a student;
# CONFIG=configs/default.yaml the from-scratch conformer).
set -euo pipefail
cd "$(dirname "$0")/.."
asr=".venv/bin/asr-poc"
corpus=data/synthetic
minutes=${MINUTES:-5}
port=${PORT:-8866}
config=${CONFIG:-configs/whisper-finetune.yaml}
export ASR_POC_ROOT="${ASR_POC_ROOT:-$PWD}"

if [ ! -f "$corpus/metadata.csv" ]; then
  echo "== building the default corpus in $corpus (espeak-ng and Festival voices, a minute or two)"
  "$asr" prepare synthetic --out "$corpus" --utterances 6000 --seed 0
fi
# real speech, shipped in the package: built when missing or older than the package's set (12 clips before 92)
shipped=$(.venv/bin/python -c "from asr_poc.datasets.real_check import shipped_clips; print(len(shipped_clips()))")
if [ ! -f data/real-check/metadata.csv ] || [ "$(grep -c . data/real-check/metadata.csv)" -lt "$shipped" ]; then
  "$asr" prepare real-check --out data/real-check
fi
if [ ! -f data/lm/english/words.arpa ]; then  # the Test tab's "beam search + English word LM" (~15 s, 115 MB)
  echo "== building the English language model in data/lm/english (from the pocketsphinx package, offline)"
  "$asr" lm build --source english --out data/lm/english
fi

if [ "${1:-dashboard}" != "cli" ]; then
  echo "== dashboard: open the URL printed below, token included, in a browser (Ctrl-C stops the server)"
  exec "$asr" dashboard --port "$port" --config "$config"
fi

log=$(mktemp)
"$asr" train --config "$config" --dataset synthetic --minutes "$minutes" | tee "$log"
run=$(head -n 1 "$log")
echo "== run folder: $run"
"$asr" runs
"$asr" eval "$run/best.pt" --dataset synthetic --split test
"$asr" eval "$run/best.pt" --dataset real-check --split test
held_out=$(awk -F'|' '$2=="test"{print $1; exit}' "$corpus/splits.csv")
echo "== transcribing a held-out voice: $corpus/wavs/$held_out.wav"
grep "^$held_out|" "$corpus/metadata.csv" | cut -d'|' -f3 | sed 's/^/   said:  /'
"$asr" transcribe "$run/best.pt" "$corpus/wavs/$held_out.wav"
