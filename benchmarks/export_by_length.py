"""Issue 22: eager torch vs ONNX fp32 vs int8 by utterance length, the model alone (no decoding), one thread.

    .venv/bin/python benchmarks/export_by_length.py CHECKPOINT [--seconds 1 3 6 12]

Exports CHECKPOINT (fp32 and int8) into a temporary folder, then times eager `ctc_logits` against onnxruntime's
`session.run` on noise of each length: the calling thread's CPU time, median of 5 calls, one thread, with the load
average. Shows where the speed-up comes from: a fixed per-call cost (eager's is larger) and a per-second cost.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from asr_poc.decoding.emissions import ctc_logits_fn
from asr_poc.export import OnnxCTCModel, export_checkpoint
from asr_poc.models.interface import BaseASRModel


def cpu_ms(fn, calls: int = 5) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1, 3, 6, 12])
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = BaseASRModel.from_checkpoint(args.checkpoint).eval()
    eager = ctc_logits_fn(model)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        files = export_checkpoint(args.checkpoint, int8=True, out_dir=tmp)
        fp32, int8 = OnnxCTCModel(files["onnx"], threads=1), OnnxCTCModel(files["int8"], threads=1)
        print(f"{model.name}; load average {load} -> ", end="")
        rows = []
        for seconds in args.seconds:
            n = int(seconds * model.sample_rate)
            wav, lengths = torch.randn(1, n, generator=torch.Generator().manual_seed(0)) * 0.1, torch.tensor([n])
            feed = {"waveforms": wav.numpy(), "lengths": lengths.numpy()}
            with torch.inference_mode():
                e = cpu_ms(lambda: eager(wav, lengths))
            f, q = cpu_ms(lambda: fp32.session.run(None, feed)), cpu_ms(lambda: int8.session.run(None, feed))
            rows.append(f"| {seconds:g} s | {e:.1f} | {f:.1f} ({e / f:.2f}x) | {q:.1f} ({e / q:.2f}x) |")
        print(os.getloadavg())
    print("| audio | eager ms | ONNX fp32 ms (vs eager) | int8 ms (vs eager) |\n| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
