"""Issue 22, item 4: a streaming model (whisper-ctc or conformer) as eager torch vs the streaming ONNX export (fp32,
int8), live-style.

    .venv/bin/python benchmarks/export_streaming.py [CHECKPOINT] [--clips 40] [--push-ms 160] [--data DIR --split test]

CHECKPOINT: a streaming whisper-ctc or conformer checkpoint (default: best.pt of the newest whisper-ctc run under
/tmp/exp/runs whose config.yaml sets streaming_chunk_ms). Exports it (asr_poc/export_streaming.py: fp32 and int8)
into a temporary folder, then streams the first `--clips` clips of data/real-check (metadata.csv order; a corpus
with a splits.csv, such as data/synthetic, gives only its `--split` rows) in pushes of `--push-ms`
through each backend on ONE thread (torch.set_num_threads(1), onnxruntime intra_op_num_threads=1), interleaved
clip by clip (the order of the three rotates each clip, after one warm-up clip each), the final flush included.
The log-mel front end is the same torch code for all three (the model's streaming features, outside the graph).

Per backend: RTFx (audio seconds / compute seconds, wall and thread CPU), the ratio to eager, the compute of a
push that completed exactly one chunk (p50/p95 ms, wall), WER/CER against the references, and how many final
transcripts differ from eager's. `--reference whisper-tiny.en` (the default; `--reference none` skips it) decodes
the same clips whole in the same interleaved loop, so each backend's RTFx is also a ratio to Whisper tiny.en's,
measured in this run. The load average is taken before and after. Results go to
benchmarks/results/export-streaming-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from asr_poc.audio import load_audio
from asr_poc.bench import machine
from asr_poc.bench.export_stream import stream_once as stream
from asr_poc.evaluation import error_rates
from asr_poc.export_streaming import export_streaming, load_onnx_model
from asr_poc.models.interface import BaseASRModel
from asr_poc.references import reference

ROOT = Path(__file__).resolve().parents[1]


def newest_streaming_checkpoint(runs: Path = Path("/tmp/exp/runs")) -> Path:
    for run in sorted(runs.glob("*whisper-ctc*"), reverse=True):
        cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
        arch = (cfg.get("models") or {}).get("whisper-ctc") or {}
        if arch.get("streaming_chunk_ms") and (run / "best.pt").is_file():
            return run / "best.pt"
    raise SystemExit(f"no streaming whisper-ctc run with a best.pt under {runs}")


def clips(folder: Path, n: int, split: str = "test") -> list[tuple[str, np.ndarray, str]]:
    rows = [line.split("|") for line in (folder / "metadata.csv").read_text().splitlines() if line.strip()]
    if (folder / "splits.csv").is_file():  # a corpus with splits: only this split's utterances
        wanted = {line.split("|")[0] for line in (folder / "splits.csv").read_text().splitlines()
                  if line.strip().endswith(f"|{split}")}
        rows = [r for r in rows if r[0] in wanted]
    return [(r[0], load_audio(folder / "wavs" / f"{r[0]}.wav", 16000), r[-1]) for r in rows[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--push-ms", type=float, default=160.0)
    parser.add_argument("--data", default=str(ROOT / "data" / "real-check"))
    parser.add_argument("--split", default="test", help="with a corpus that has a splits.csv: which split")
    parser.add_argument("--reference", default="whisper-tiny.en", help="a reference recogniser timed beside (none: skip)")
    parser.add_argument("--out", default=None,
                        help="result JSON (default benchmarks/results/export-streaming-DATE.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = Path(args.checkpoint) if args.checkpoint else newest_streaming_checkpoint()
    eager = BaseASRModel.from_checkpoint(checkpoint, device="cpu").eval()
    push = int(round(args.push_ms * eager.sample_rate / 1000))
    data = clips(Path(args.data), args.clips, args.split)
    audio_seconds = sum(len(a) for _, a, _ in data) / eager.sample_rate
    described = machine.describe()
    with tempfile.TemporaryDirectory() as tmp:
        files = export_streaming(checkpoint, int8=True, out_dir=tmp)
        systems = {"eager": eager, "onnx": load_onnx_model(files["onnx"], threads=1),
                   "int8": load_onnx_model(files["int8"], threads=1)}
        names = list(systems)
        recogniser = None if args.reference == "none" else reference(args.reference)
        for name in names:  # warm-up
            stream(systems[name], data[0][1], push, eager.chunk_frames)
        if recogniser is not None:
            recogniser.transcribe(data[0][1])
        whole = {"wall": 0.0, "cpu": 0.0, "texts": []}
        load_start = machine.load_average()
        out = {name: {"wall": 0.0, "cpu": 0.0, "chunk_ms": [], "texts": []} for name in names}
        for i, (_, audio, _) in enumerate(data):
            for name in names[i % 3:] + names[: i % 3]:
                r = stream(systems[name], audio, push, eager.chunk_frames)
                o = out[name]
                o["wall"] += r["wall"]
                o["cpu"] += r["cpu"]
                o["chunk_ms"] += r["chunk_ms"]
                o["texts"].append(r["text"])
            if recogniser is not None:
                t0, c0 = time.perf_counter(), time.thread_time()
                whole["texts"].append(recogniser.transcribe(audio))
                whole["wall"] += time.perf_counter() - t0
                whole["cpu"] += time.thread_time() - c0
        load_end = machine.load_average()
    references = [ref for _, _, ref in data]
    rows = []
    for name in names:
        o = out[name]
        rates = error_rates(references, o["texts"])
        rows.append({"backend": name, "rtfx": audio_seconds / o["wall"], "rtfx_thread_cpu": audio_seconds / o["cpu"],
                     "chunk_ms_p50": float(np.percentile(o["chunk_ms"], 50)),
                     "chunk_ms_p95": float(np.percentile(o["chunk_ms"], 95)), "chunks_timed": len(o["chunk_ms"]),
                     "wer": rates["wer"], "cer": rates["cer"],
                     "transcripts_differing_from_eager": sum(a != b for a, b in zip(o["texts"], out["eager"]["texts"])),
                     "file_bytes": files.get({"onnx": "onnx_bytes", "int8": "int8_bytes"}.get(name, ""), None)})
    if recogniser is not None:
        rates = error_rates(references, whole["texts"])
        ref_row = {"backend": args.reference, "rtfx": audio_seconds / whole["wall"],
                   "rtfx_thread_cpu": audio_seconds / whole["cpu"], "wer": rates["wer"], "cer": rates["cer"],
                   "texts": whole["texts"]}
    for row in rows:
        if recogniser is not None:
            row["ratio_to_reference"] = row["rtfx"] / ref_row["rtfx"]
            row["ratio_to_reference_thread_cpu"] = row["rtfx_thread_cpu"] / ref_row["rtfx_thread_cpu"]
        row["ratio_to_eager"] = row["rtfx"] / rows[0]["rtfx"]
        row["ratio_to_eager_thread_cpu"] = row["rtfx_thread_cpu"] / rows[0]["rtfx_thread_cpu"]
    result = {"benchmark": "export-streaming", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "checkpoint": str(checkpoint), "model": {"name": eager.name, "chunk_ms": eager.chunk_ms,
                                                       "chunk_frames": eager.chunk_frames,
                                                       "left_chunks": eager.spec.arch.left_chunks,
                                                       "parameters": eager.num_parameters()},
              "data": args.data, "split": args.split,
              "clips": len(data), "audio_seconds": audio_seconds, "push_ms": args.push_ms, "threads": 1,
              "export_seconds": files["export_seconds"], "load_average": {"start": load_start, "end": load_end},
              "machine": described, "backends": rows, "reference": ref_row if recogniser is not None else None,
              "texts": {name: out[name]["texts"] for name in names}, "ids": [i for i, _, _ in data]}
    results = ROOT / "benchmarks" / "results"
    path = Path(args.out) if args.out else results / f"export-streaming-{time.strftime('%Y%m%d')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"{checkpoint}: {len(data)} clips, {audio_seconds:.1f} s, pushes of {args.push_ms:g} ms, 1 thread; "
          f"load average {load_start} -> {load_end}")
    print(f"{'backend':8} {'RTFx':>7} {'x eager':>8} {'RTFx cpu':>9} {'x eager':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'WER':>6} {'CER':>6} {'differ':>7}")
    for r in rows:
        print(f"{r['backend']:8} {r['rtfx']:7.1f} {r['ratio_to_eager']:8.2f} {r['rtfx_thread_cpu']:9.1f} "
              f"{r['ratio_to_eager_thread_cpu']:8.2f} {r['chunk_ms_p50']:7.2f} {r['chunk_ms_p95']:7.2f} "
              f"{r['wer']:6.3f} {r['cer']:6.3f} {r['transcripts_differing_from_eager']:4d}/{len(data)}"
              + (f"   {r['ratio_to_reference']:.1f}x {args.reference}'s RTFx" if recogniser is not None else ""))
    if recogniser is not None:
        print(f"{args.reference}: RTFx {ref_row['rtfx']:.2f} (thread CPU {ref_row['rtfx_thread_cpu']:.2f}), whole clips, "
              f"WER {ref_row['wer']:.3f}, CER {ref_row['cer']:.3f}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
