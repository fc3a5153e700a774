"""Eager torch's stream against the streaming ONNX export (fp32, int8) on the same files, pushed as a microphone
sends audio: what `asr-poc bench --export` adds for a streaming whisper-ctc or conformer checkpoint.

Each file is pushed `push_ms` at a time through each backend's `stream_step` and then flushed, on one thread
(onnxruntime with one intra-op thread), the three backends interleaved file by file with their order rotating.
The log-mel front end is the same torch code for all three (outside the graph). Per backend: RTFx by wall clock
and by the thread's CPU time, the speed-up over eager, the compute of a push that completed exactly one chunk
(p50/p95 ms), WER/CER, and the transcripts that differ from eager's.
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Optional

import numpy as np
import torch

from . import machine
from .export import _vs
from .speed import torch_threads


def stream_once(model, audio: np.ndarray, push: int, chunk_frames: int) -> dict:
    """Push `audio` in pieces of `push` samples, then flush: the transcript, wall and thread-CPU seconds, the wall ms
    of each push that completed exactly one chunk, and the encoder frames streamed."""
    wav = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    state = model.init_stream_state()
    wall, cpu, one_chunk, position, text = 0.0, 0.0, [], 0, ""
    starts = list(range(0, len(wav), push))
    for start in starts + [None]:
        final = start is None
        piece = torch.zeros(0) if final else wav[start : start + push]
        t0, c0 = time.perf_counter(), time.thread_time()
        text, state = model.stream_step(piece, state, final=final)
        dt, dc = time.perf_counter() - t0, time.thread_time() - c0
        wall, cpu = wall + dt, cpu + dc
        chunks = (int(state["position"]) - position) / chunk_frames
        position = int(state["position"])
        if chunks == 1 and not final:
            one_chunk.append(1000 * dt)
    return {"text": text, "wall": wall, "cpu": cpu, "chunk_ms": one_chunk, "frames": position}


def bench_streaming_exports(checkpoint: str | os.PathLike, waveforms: list[np.ndarray],
                            references: Optional[list[str]], push_ms: float = 160.0) -> dict:
    """Export `checkpoint`'s chunk step (fp32 and int8, into a temporary folder) and stream `waveforms` through eager
    torch and both files, interleaved; rows as `export.compare_backends` gives them, plus the chunk compute."""
    from ..evaluation import error_rates
    from ..export_streaming import export_streaming, load_onnx_model
    from ..models.interface import BaseASRModel

    eager = BaseASRModel.from_checkpoint(checkpoint, device="cpu").eval()
    push = int(round(push_ms * eager.sample_rate / 1000))
    audio_seconds = sum(len(w) for w in waveforms) / eager.sample_rate
    with torch_threads(1), tempfile.TemporaryDirectory() as tmp:
        files = export_streaming(checkpoint, int8=True, out_dir=tmp)
        systems = {"eager": eager, "onnx": load_onnx_model(files["onnx"], threads=1),
                   "int8": load_onnx_model(files["int8"], threads=1)}
        names = list(systems)
        for name in names:  # warm-up
            stream_once(systems[name], waveforms[0], push, eager.chunk_frames)
        load_start = machine.load_average()
        out = {name: {"wall": 0.0, "cpu": 0.0, "chunk_ms": [], "texts": []} for name in names}
        for i, audio in enumerate(waveforms):
            for name in names[i % 3:] + names[: i % 3]:
                r = stream_once(systems[name], audio, push, eager.chunk_frames)
                o = out[name]
                o["wall"], o["cpu"] = o["wall"] + r["wall"], o["cpu"] + r["cpu"]
                o["chunk_ms"] += r["chunk_ms"]
                o["texts"].append(r["text"])
        load_end = machine.load_average()
    rows = []
    for name in names:
        o = out[name]
        row = {"backend": name, "rtfx": audio_seconds / o["wall"], "rtfx_thread_cpu": audio_seconds / o["cpu"],
               "chunk_ms_p50": float(np.percentile(o["chunk_ms"], 50)) if o["chunk_ms"] else None,
               "chunk_ms_p95": float(np.percentile(o["chunk_ms"], 95)) if o["chunk_ms"] else None,
               **_vs(out["eager"]["texts"], o["texts"])}
        if references:
            row.update(error_rates(references, o["texts"]))
        rows.append(row)
    for row in rows:
        row["speedup"] = round(row["rtfx"] / rows[0]["rtfx"], 3)
        row["speedup_thread_cpu"] = round(row["rtfx_thread_cpu"] / rows[0]["rtfx_thread_cpu"], 3)
        if references:
            row["wer_delta"], row["cer_delta"] = row["wer"] - rows[0]["wer"], row["cer"] - rows[0]["cer"]
    return {"backends": rows, "utterances": len(waveforms), "threads": 1, "push_ms": push_ms,
            "chunk_ms": eager.chunk_ms, "export_seconds": files["export_seconds"],
            "load_average": {"start": load_start, "end": load_end}}
