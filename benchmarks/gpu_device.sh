#!/usr/bin/env bash
# One call on the GPU machine: set up, issue 10's GPU figures, then issue 11's ablation at fixed steps.
# Carried: .whl (the wheels the GPU image lacks: jiwer, rapidfuzz, pydantic, soundfile, cffi, pyroomacoustics ...) and
# .gpu/opus (the default corpus as Opus, ~50 MB, to fit the 64 MiB a call carries; decoded back to 16 kHz WAV there).
# Run: FIG_S=170 FIG_BUDGET=130 TOTAL_S=575 bash benchmarks/gpu_device.sh
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/nvidia.txt
python3 benchmarks/gpu_decode_corpus.py .gpu/opus data/synthetic || exit 4
python3 -m asr_poc prepare real-check --out data/real-check > /dev/null || echo "real-check failed"
echo "setup done after $(( $(date +%s) - t0 )) s"
timeout ${FIG_S:-190} python3 benchmarks/gpu.py --corpus data/synthetic --out $OUT/gpu.jsonl --budget-s ${FIG_BUDGET:-150} > $OUT/gpu.log 2>&1
echo "figures done after $(( $(date +%s) - t0 )) s"
left=$(( ${TOTAL_S:-570} - ($(date +%s) - t0) - 60 ))
mins=$(python3 -c "print(round(($left - 45) / 60, 2))")
echo "ablation: $left s left, training for $mins minutes each"
ab() { name=$1; shift
  timeout $left python3 benchmarks/ablation.py "$name" --corpus data/synthetic --real-check data/real-check --steps ${STEPS:-3000} \
    --threads 1 --runs /tmp/abl --results $OUT/ablation.jsonl --set training.num_workers=2 \
    --set training.max_minutes=$mins --set training.checkpoint_minutes=null "$@" > $OUT/abl-$name.log 2>&1 & }
ab default
ab normalize-none --set features.normalize=none
ab normalize-causal --set features.normalize=causal
ab size-s --set models.conformer.size=s
ab augment-off --set datasets.synthetic.augment=null
wait
python3 benchmarks/ablation_curves.py /tmp/abl > $OUT/curves.jsonl
tail -n 3 $OUT/abl-*.log | cut -c1-300
echo "all done after $(( $(date +%s) - t0 )) s"
