"""Greedy vs beam search (with the n-gram LM) on the same files in one run: WER, CER and RTFx side by side.

Each method decodes every file at batch 1 on one thread (the model's forward pass is included in every method's
time, as `Transcriber` does it); `speed_vs_greedy` is its RTFx over greedy's, `wer_delta` its WER minus greedy's.
Methods: greedy; beam with the lexicon and the word LM; beam lexicon-free with the character LM (the config's
`decoding` section gives beam size, LM weight and the rest).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import machine
from .speed import make_batches, time_transcribe, torch_threads


def methods_for(lm_path: str, base: Optional[dict] = None) -> list[dict]:
    """The decoding sections compared: greedy, beam + lexicon + word LM, beam lexicon-free + character LM."""
    base = {k: v for k, v in (base or {}).items() if k not in ("method", "lm_path", "lexicon")}
    return [{"method": "greedy"},
            {**base, "method": "beam", "lm_path": lm_path, "lexicon": True},
            {**base, "method": "beam", "lm_path": lm_path, "lexicon": False}]


def compare_decoding(model, methods: list[dict], waveforms: list[np.ndarray], references: list[str], rate: int,
                     threads: int = 1, repeats: int = 1) -> dict:
    """Decode `waveforms` with each method (a `decoding` section); WER/CER against `references` and RTFx."""
    from ..decoding.beam import DecodedModel, DecodingOptions, make_decoder
    from ..evaluation import error_rates

    batches = make_batches(waveforms, rate, 1)
    load_start = machine.load_average()
    rows = []
    with torch_threads(threads) as used:
        for section in methods:
            options = DecodingOptions.from_dict(section)
            decoded = DecodedModel(model, make_decoder(model.tokenizer, options))
            figures, texts = time_transcribe(decoded, batches, repeats, thread_cpu=used == 1)
            rows.append({"method": options.describe(), "decoding": options.to_dict(), "rtfx": figures["rtfx"],
                         "rtfx_thread_cpu": figures.get("rtfx_thread_cpu"),
                         "call_ms_p50": figures["call_ms_p50"], "threads": used, **error_rates(references, texts),
                         "transcripts": texts[:20]})
    greedy = rows[0]
    for row in rows:
        row["speed_vs_greedy"] = round(row["rtfx"] / greedy["rtfx"], 3) if greedy["rtfx"] and row["rtfx"] else None
        row["wer_delta"] = row["wer"] - greedy["wer"]
        row["cer_delta"] = row["cer"] - greedy["cer"]
    return {"methods": rows, "utterances": len(waveforms), "threads": threads,
            "load_average": {"start": load_start, "end": machine.load_average()}}


def markdown(result: dict) -> str:
    """The comparison as a Markdown table."""
    lines = ["| decoding | WER | WER diff | CER | RTFx | speed vs greedy |", "|---|---|---|---|---|---|"]
    for r in result["methods"]:
        lines.append(f"| {r['method']} | {r['wer']:.3f} | {r['wer_delta']:+.3f} | {r['cer']:.3f} | {r['rtfx']:.0f} | "
                     f"{r['speed_vs_greedy']:.2f}x |")
    lines.append(f"\n{result['utterances']} utterances, batch 1, {result['threads']} thread(s); load average "
                 f"{result['load_average']['start']} -> {result['load_average']['end']}")
    return "\n".join(lines)


def report_sections(result: dict) -> list[str]:
    """Markdown sections for `asr-poc bench --lm` / `--export` results of every system (empty when not asked)."""
    from .export import markdown as export_markdown

    lines: list[str] = []
    for s in result.get("systems", []):
        if s.get("decoding"):
            lines += ["", f"## Decoding: greedy vs beam search with the n-gram LM ({s['name']})", "",
                      markdown(s["decoding"]) if s["decoding"].get("methods") else s["decoding"].get("reason", "")]
        if s.get("export"):
            lines += ["", f"## Export: eager torch vs ONNX vs int8 ({s['name']})", "",
                      export_markdown(s["export"]) if s["export"].get("backends") else s["export"].get("reason", "")]
        streamed = s.get("export_streaming")
        if streamed:
            lines += ["", f"## Streaming export: eager stream vs ONNX vs int8, {streamed.get('push_ms', 0):g} ms "
                          f"pushes ({s['name']})", "",
                      export_markdown(streamed) if streamed.get("backends") else streamed.get("reason", "")]
            if streamed.get("backends"):
                lines.append("compute per chunk p50 / p95 ms: " + "; ".join(
                    f"{r['backend']} {r['chunk_ms_p50']:.2f} / {r['chunk_ms_p95']:.2f}"
                    for r in streamed["backends"] if r.get("chunk_ms_p50") is not None))
    return lines


def decoding_and_export(system, waveforms: list[np.ndarray], references: list[str], lm_path: Optional[str],
                        export: bool, decoding: Optional[dict] = None, repeats: int = 1) -> dict:
    """`asr-poc bench --lm DIR` / `--export` for one trained system: {"decoding": ..., "export": ...}, and for a
    streaming whisper-ctc or conformer also {"export_streaming": ...} (`export_stream.py`).

    A failure becomes that part's `reason` (one line); the rest of the bench keeps its figures.
    """
    from .export import bench_exports

    out: dict = {}
    if lm_path:
        try:
            out["decoding"] = compare_decoding(system.model, methods_for(lm_path, decoding), waveforms, references,
                                               system.model.sample_rate, repeats=repeats)
        except Exception as err:
            out["decoding"] = {"available": False, "reason": f"{err.__class__.__name__}: {err}"}
    if export:
        try:
            if system.kind != "checkpoint":
                raise ValueError("only a trained checkpoint is exported")
            out["export"] = bench_exports(system.source, waveforms, references, repeats=max(1, repeats))
        except Exception as err:
            out["export"] = {"available": False, "reason": f"{err.__class__.__name__}: {str(err).splitlines()[0]}"}
        if system.kind == "checkpoint" and streams_to_onnx(system.model):  # and its chunk step, streamed
            from .export_stream import bench_streaming_exports

            try:
                out["export_streaming"] = bench_streaming_exports(system.source, waveforms, references)
            except Exception as err:
                out["export_streaming"] = {"available": False,
                                           "reason": f"{err.__class__.__name__}: {str(err).splitlines()[0]}"}
    return out


def streams_to_onnx(model) -> bool:
    """Whether `asr-poc export --streaming` takes this model: a streaming whisper-ctc or conformer."""
    return getattr(model, "name", None) in ("whisper-ctc", "conformer") and bool(getattr(model, "streaming", False))
