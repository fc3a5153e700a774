"""Issue 10: the default (full-context) xs conformer at batch 1 on one thread, our encoder against torchaudio's.

    .venv/bin/python benchmarks/full_context_speed.py [--utterances 20] [--rounds 5]

Both systems are the same untrained `conformer:xs` weights (features, subsampling and head shared); only the encoder
differs: torchaudio's `Conformer.forward` (the path before `models/streaming.py`) or `ConformerEncoder`. They are
timed interleaved, utterance by utterance, so a busy machine slows both alike; RTFx = audio seconds / compute
seconds, by the decoding thread's CPU time (what one core does, whatever else runs) and by wall time, with the load
average. Audio: the first utterances of data/synthetic's test split when it exists, else 3 s of noise each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torchaudio.models import Conformer

from asr_poc.models.conformer import ConformerConfig, ConformerCTC
from asr_poc.text import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def waveforms(n: int) -> list[torch.Tensor]:
    from asr_poc.plugins import load_dataset

    folder = ROOT / "data" / "synthetic"
    if not (folder / "metadata.csv").is_file():
        return [torch.randn(48000) * 0.1 for _ in range(n)]
    test = load_dataset("synthetic", {"path": str(folder), "sample_rate": 16000}, "test")
    return [test[i]["waveform"] for i in range(min(n, len(test)))]


class TorchaudioEncoder(Conformer):
    """torchaudio's `Conformer` behind our encoder's call signature (same parameter names: weights load)."""

    def forward(self, x, lengths, chunk=None, left_chunks=None, causal=False):
        return super().forward(x, lengths)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocab = CharTokenizer.from_texts(["abcdefghijklmnopqrstuvwxyz'"]).vocab
    config = ConformerConfig()
    ours = ConformerCTC({**config.model_dump(), "vocab": vocab, "features": {"normalize": "utterance"}}).eval()
    theirs = ConformerCTC({**config.model_dump(), "vocab": vocab, "features": {"normalize": "utterance"}}).eval()
    theirs.encoder = TorchaudioEncoder(input_dim=config.encoder_dim, num_heads=config.num_heads, ffn_dim=config.ffn_dim,
                                       num_layers=config.num_layers, depthwise_conv_kernel_size=config.kernel_size,
                                       dropout=config.dropout)
    theirs.load_state_dict(ours.state_dict())
    theirs.eval()
    systems = {"torchaudio Conformer.forward (before)": theirs, "models/streaming.py ConformerEncoder": ours}
    wavs = waveforms(args.utterances)
    audio = sum(len(w) for w in wavs) / 16000
    print(f"load average at start: {os.getloadavg()}; {len(wavs)} utterances, {audio:.1f} s of audio")
    cpu = {k: [] for k in systems}
    wall = {k: [] for k in systems}
    for _ in range(args.rounds):
        totals = {k: [0.0, 0.0] for k in systems}
        for w in wavs:
            for name, model in systems.items():
                model.transcribe(w[None], torch.tensor([len(w)]))  # warm
                c, t = time.thread_time(), time.perf_counter()
                model.transcribe(w[None], torch.tensor([len(w)]))
                totals[name][0] += time.thread_time() - c
                totals[name][1] += time.perf_counter() - t
        for name, (c, t) in totals.items():
            cpu[name].append(audio / c)
            wall[name].append(audio / t)
    base = statistics.median(cpu[next(iter(systems))])
    print(f"load average at end: {os.getloadavg()}")
    print("| encoder | RTFx by thread CPU (median of rounds) | ratio | RTFx by wall time |")
    print("| --- | --- | --- | --- |")
    for name in systems:
        print(f"| {name} | {statistics.median(cpu[name]):.0f} | {statistics.median(cpu[name]) / base:.2f}x | "
              f"{statistics.median(wall[name]):.0f} |")
    same = [ours.transcribe(w[None], torch.tensor([len(w)])) == theirs.transcribe(w[None], torch.tensor([len(w)]))
            for w in wavs]
    print(f"same transcripts: {sum(same)}/{len(same)}")


if __name__ == "__main__":
    main()
