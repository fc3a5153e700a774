"""Cost of producing training items: seconds of CPU per second of audio for reading (and resampling) a corpus, with
and without the default augmentation, on one thread. Compare with the trainer's audio seconds per second.

    .venv/bin/python benchmarks/data_cost.py CORPUS [CORPUS ...] [--items 200]
"""
from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpora", nargs="+")
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from asr_poc.config import load_config
    from asr_poc.datasets.synthetic import SyntheticDataset

    augment = load_config(None, [f"datasets.synthetic.path={args.corpora[0]}"])["datasets"]["synthetic"]["augment"]
    print(f"load average {os.getloadavg()[0]:.1f}; augment: {augment}")
    for corpus in args.corpora:
        for label, aug in (("plain", None), ("augmented", augment)):
            ds = SyntheticDataset({"path": corpus, "sample_rate": 16000, "augment": aug}, "train")
            torch.manual_seed(0)
            if ds.augmenter is not None:
                ds.augmenter.rirs()  # the bank is built once per process, not per item
            audio, cpu = 0.0, time.thread_time()
            for i in range(args.items):
                audio += ds[i]["waveform"].numel() / 16000
            cpu = time.thread_time() - cpu
            print(f"{corpus} {label}: {audio / cpu:.0f} audio s per CPU s ({1000 * cpu / args.items:.1f} ms an item)")


if __name__ == "__main__":
    main()
