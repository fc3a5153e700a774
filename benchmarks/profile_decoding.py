"""Where the time of batch-1 decoding goes on one CPU thread, and what variants of the xs conformer would gain.

    .venv/bin/python benchmarks/profile_decoding.py [--limit 40] [--out benchmarks/results/profile-decoding.md]

Times each stage of `ConformerCTC.transcribe` (log-mel, conv subsampling, encoder, head + argmax, CTC text
decoding), lists the top operators from torch.profiler, then measures variants built here (untrained, for speed
only): 8x subsampling, fewer channels in the subsampling convolutions, int8 dynamic quantization of the Linear
layers. Times are the decoding thread's CPU time (time.thread_time), which is what one thread costs whatever
else runs on the machine; the wall-clock figure is printed beside it with the load average.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr_poc.bench.corpus import load_corpus  # noqa: E402
from asr_poc.bench.machine import describe, load_average  # noqa: E402
from asr_poc.bench.systems import load_system  # noqa: E402
from asr_poc.config import load_config  # noqa: E402


class SlimSubsampling(nn.Module):
    """The conv subsampling with `channels` instead of encoder_dim channels (then the same projection)."""

    def __init__(self, original, input_dim: int, output_dim: int, channels: int, factor: int):
        super().__init__()
        layers, c, freq = [], 1, input_dim
        for _ in range({4: 2, 8: 3}[factor]):
            layers += [nn.Conv2d(c, channels, 3, stride=2, padding=1), nn.SiLU()]
            c, freq = channels, (freq - 1) // 2 + 1
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(channels * freq, output_dim)
        self.output_lengths = original.output_lengths

    def forward(self, x, lengths):
        x = self.conv(x.unsqueeze(1))
        b, c, t, f = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, t, c * f)), self.output_lengths(lengths)


def stages(model, wavs) -> dict:
    """Thread CPU seconds per stage of transcribe, summed over `wavs`."""
    out = dict.fromkeys(("log-mel", "conv subsampling", "encoder", "head + argmax", "CTC text decoding"), 0.0)
    for w in wavs[:3]:  # warm-up: the tokenizer's first use imports transformers, first calls allocate
        model.transcribe(w, torch.tensor([w.shape[1]]))
    with torch.inference_mode():
        for w in wavs:
            n = torch.tensor([w.shape[1]])
            t0 = time.thread_time()
            f, fl = model.frontend(w, n)
            t1 = time.thread_time()
            x, xl = model.subsampling(f, fl)
            t2 = time.thread_time()
            x, xl = model.encoder(x, xl.clamp(max=x.shape[1]))
            t3 = time.thread_time()
            best = model.head(x).argmax(-1)
            t4 = time.thread_time()
            model.tokenizer.decode_ctc(best[0].tolist())
            t5 = time.thread_time()
            for key, dt in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                out[key] += dt
    return out


def rtfx(model, wavs, audio: float, repeats: int = 3) -> tuple[float, float]:
    """(RTFx by thread CPU time, RTFx by wall time), best of `repeats` passes."""
    for w in wavs[:2]:
        model.transcribe(w, torch.tensor([w.shape[1]]))
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        for w in wavs:
            model.transcribe(w, torch.tensor([w.shape[1]]))
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return audio / min(cpu), audio / min(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--checkpoint", help="profile the stages of this trained checkpoint (default: the xs preset, "
                        "whose random output makes text decoding look dearer than it is)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/profile-decoding.md"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # torch.ao.quantization's deprecation notices
    torch.set_num_threads(1)
    corpus = load_corpus(load_config(None, args.overrides), "test", args.limit)
    wavs = [torch.from_numpy(w).unsqueeze(0) for w in corpus.waveforms]
    audio = corpus.audio_seconds
    lines = [f"# Batch-1 decoding on one thread: where the time goes", "",
             f"- machine: {describe()['summary']}; load average at start {load_average()}",
             f"- audio: {len(corpus)} utterances, {audio:.1f} s ({corpus.dataset}/{corpus.split}); "
             f"`{' '.join(sys.argv)}`", ""]

    base = load_system("conformer:xs", None, args.overrides).model
    profiled = load_system(args.checkpoint).model if args.checkpoint else base
    split = stages(profiled, wavs)
    total = sum(split.values())
    what = args.checkpoint or "the default xs conformer-CTC preset (untrained)"
    lines += [f"## Stages of {what} (thread CPU time)", "", "| stage | seconds | share |",
              "| --- | --- | --- |"]
    lines += [f"| {k} | {v:.3f} | {100 * v / total:.0f}% |" for k, v in split.items()]
    lines += [f"| total | {total:.3f} | RTFx {audio / total:.0f} |", ""]

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for w in wavs[:10]:
            profiled.transcribe(w, torch.tensor([w.shape[1]]))
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    lines += ["## Top operators (torch.profiler, first 10 utterances)", "", "```", table.strip(), "```", ""]

    variants = {"xs (default: 4x subsampling, 144 conv channels)": base}
    v8 = load_system("conformer:xs,subsampling=8", None, args.overrides).model
    variants["xs, 8x subsampling (config: subsampling=8)"] = v8
    for channels in (64, 32):
        m = copy.deepcopy(base)
        m.subsampling = SlimSubsampling(base.subsampling, 80, 144, channels, 4).eval()
        variants[f"xs, {channels} subsampling channels (code change)"] = m
    m = copy.deepcopy(base)
    m.subsampling = SlimSubsampling(base.subsampling, 80, 144, 32, 4).eval()
    variants["xs, 32 subsampling channels + int8 dynamic Linear"] = torch.ao.quantization.quantize_dynamic(
        m, {nn.Linear}, dtype=torch.qint8)
    variants["xs, int8 dynamic Linear only"] = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(base), {nn.Linear}, dtype=torch.qint8)
    lines += ["## Variants (untrained weights: speed only)", "",
              "| variant | float parameters | RTFx, thread CPU | RTFx, wall |", "| --- | --- | --- | --- |"]
    for name, model in variants.items():
        cpu, wall = rtfx(model.eval(), wavs, audio)
        params = sum(p.numel() for p in model.parameters())
        lines.append(f"| {name} | {params / 1e6:.2f}M | {cpu:.0f} | {wall:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", f"load average at end {load_average()}", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
