"""Where the time of a training step goes (xs conformer, the real data path), and the throughput it gives.

    .venv/bin/python benchmarks/profile_training.py [--steps 20] [--threads 2] [--out benchmarks/results/profile-training.md]

Builds what `asr_poc.training.trainer.train` builds (the data set's train split, the duration-bucketed sampler,
`collate_fn` with the tokenizer, the model with SpecAugment, AdamW, gradient clipping) and times each part of a
step: loading and collating the batch (reading WAVs, resampling 22.05 -> 16 kHz), forward, backward, and
clipping + optimizer step. The process's CPU time over wall time says how many cores it really had.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from asr_poc.models.spec import model_spec  # noqa: E402
from asr_poc.bench.machine import describe, load_average  # noqa: E402
from asr_poc.config import dataset_section, load_config  # noqa: E402
from asr_poc.datasets.interface import DurationBucketSampler, collate_fn  # noqa: E402
from asr_poc.plugins import get_dataset_class, get_model_class  # noqa: E402
from asr_poc.text import CharTokenizer  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--subsampling-channels", type=int,
                        help="what-if: this many channels in the conv subsampling instead of encoder_dim (a code "
                             "change, see profile_decoding.py)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/profile-training.md"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(None, args.overrides)
    tc = cfg["training"]
    torch.manual_seed(tc["seed"])
    train_ds = get_dataset_class(cfg["dataset"])(dataset_section(cfg), "train")
    tokenizer = CharTokenizer.from_texts(train_ds.texts())
    model = get_model_class(cfg["model"])(model_spec(cfg, tokenizer.vocab, tc["spec_augment"])).train()
    if args.subsampling_channels:
        from profile_decoding import SlimSubsampling

        old = model.subsampling
        model.subsampling = SlimSubsampling(old, model.frontend.features.n_mels, old.proj.out_features,
                                            args.subsampling_channels, {2: 4, 3: 8}[old.layers]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc["learning_rate"], weight_decay=tc["weight_decay"])
    sampler = DurationBucketSampler(train_ds.durations(), tc["batch_size"], seed=tc["seed"])
    loader = iter(torch.utils.data.DataLoader(train_ds, batch_sampler=sampler.batches(),
                                              collate_fn=partial(collate_fn, tokenizer=tokenizer)))
    parts = dict.fromkeys(("load + collate batch", "forward (features, SpecAugment, encoder, CTC loss)", "backward",
                           "clip + AdamW step"), 0.0)
    audio = wall = cpu = 0.0
    for step in range(args.warmup + args.steps):
        t0, c0 = time.perf_counter(), cpu_seconds()
        batch = next(loader)
        t1 = time.perf_counter()
        loss = model(batch)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if step >= args.warmup:
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key] += dt
            audio += float(batch["waveform_lengths"].sum()) / model.sample_rate
            wall += t4 - t0
            cpu += cpu_seconds() - c0
    variant = f", {args.subsampling_channels} subsampling channels" if args.subsampling_channels else ""
    lines = [f"# A training step of the xs conformer{variant}: where the time goes", "",
             f"- machine: {describe()['summary']}; torch threads {torch.get_num_threads()}; load average at end "
             f"{load_average()}",
             f"- {args.steps} steps after {args.warmup} warm-up steps, batch {tc['batch_size']}, SpecAugment "
             f"{tc['spec_augment']}; `{' '.join(sys.argv)}`",
             f"- throughput: **{audio / wall:.1f} audio seconds per wall second**; cores kept busy {cpu / wall:.2f}; "
             f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters",
             "", "| part | seconds | share |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v:.2f} | {100 * v / wall:.0f}% |" for k, v in parts.items()]
    lines += [f"| total | {wall:.2f} | {audio:.0f} s of audio |", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
