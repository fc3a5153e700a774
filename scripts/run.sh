#!/usr/bin/env bash
# The workbench from the command line: build the default corpus if missing, train a small conformer for a few
# minutes, evaluate it on voices it never heard, and transcribe a held-out file.
#   MINUTES=3 scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
asr=".venv/bin/asr-poc"
corpus=data/synthetic
minutes=${MINUTES:-5}

if [ ! -f "$corpus/metadata.csv" ]; then
  "$asr" prepare synthetic --out "$corpus" --utterances 3000 --seed 0
fi
log=$(mktemp)
"$asr" train --dataset synthetic --minutes "$minutes" | tee "$log"
run=$(head -n 1 "$log")
echo "== run folder: $run"
"$asr" runs
"$asr" eval "$run/best.pt" --dataset synthetic --split test
held_out=$(awk -F'|' '$2=="test"{print $1; exit}' "$corpus/splits.csv")
echo "== transcribing a held-out voice: $corpus/wavs/$held_out.wav"
grep "^$held_out|" "$corpus/metadata.csv" | cut -d'|' -f3 | sed 's/^/   said:  /'
"$asr" transcribe "$run/best.pt" "$corpus/wavs/$held_out.wav"
