"""What the waveform augmentation costs per audio second: per utterance (`Augmenter`, as the DataLoader workers run
it) against per padded batch (`BatchAugmenter`, as the trainer runs it with `training.augment_in: batches`), on the
CPU and, when there is one, on the GPU. The default config's probabilities at full strength (no ramp), the first
batches of the corpus in the trainer's own batch order. Ratios are against the per-utterance figure of the same run.

    .venv/bin/python benchmarks/augment_cost.py [--corpus data/synthetic] [--batches 8] [--batch-size 16]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from asr_poc.augment import AugmentConfig, Augmenter
from asr_poc.augment_batch import BatchAugmenter
from asr_poc.config import load_config
from asr_poc.datasets.bucketing import make_batch_sampler
from asr_poc.datasets.interface import collate_fn
from asr_poc.datasets.synthetic import SyntheticDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/synthetic")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(None, [f"datasets.synthetic.path={args.corpus}"])
    config = AugmentConfig.model_validate({**cfg["datasets"]["synthetic"]["augment"], "ramp_utterances": 0})
    data = SyntheticDataset({"path": args.corpus, "sample_rate": 16000}, "train")
    sampler = make_batch_sampler(data.durations(), args.batch_size, None, seed=0)
    sampler.set_epoch(0)
    batches = [collate_fn([data[i] for i in b]) for b in sampler.batches()[: args.batches]]
    audio = sum(float(b["waveform_lengths"].sum()) for b in batches) / 16000
    padded = sum(b["waveforms"].numel() for b in batches) / 16000
    print(f"load average {os.getloadavg()[0]:.2f}; {len(batches)} batches of {args.batch_size}: {audio:.0f} s of audio "
          f"({padded:.0f} s padded); {args.threads} thread(s); effects {config.model_dump(exclude={'rooms'})}")

    torch.manual_seed(0)
    rows = [(b["waveforms"][i, : int(n)]) for b in batches for i, n in enumerate(b["waveform_lengths"])]
    per_utterance = Augmenter(config, 16000, other_utterance=lambda: rows[int(torch.randint(0, len(rows), ()))])
    per_utterance.rirs()  # built once per process, not per item
    started = time.thread_time()
    for row in rows:
        per_utterance(row)
    figures = {"per_utterance_cpu": audio / (time.thread_time() - started)}

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        batched = BatchAugmenter(config, 16000, seed=0)
        batched.rirs(torch.device(device))
        on_device = [(b["waveforms"].to(device), b["waveform_lengths"].to(device)) for b in batches]
        for _ in range(2 if device == "cuda" else 0):  # CUDA kernels and FFT plans warm up
            batched(*on_device[0])
        if device == "cuda":
            torch.cuda.synchronize()
        clock = time.perf_counter if device == "cuda" else time.thread_time
        started = clock()
        for waveforms, lengths in on_device:
            batched(waveforms, lengths)
        if device == "cuda":
            torch.cuda.synchronize()
        figures[f"batched_{device}"] = audio / (clock() - started)
    base = figures["per_utterance_cpu"]
    for name, rate in figures.items():
        print(f"{name:>20}: {rate:8.0f} audio s per {'wall' if 'cuda' in name else 'CPU'} s  ({rate / base:.2f}x)")
    print(json.dumps({"load_average": os.getloadavg()[0], "audio_seconds": audio, **figures}))


if __name__ == "__main__":
    main()
