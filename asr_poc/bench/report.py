"""The benchmark's report: ratios to the baseline, a JSON file, a Markdown table and the accuracy-vs-speed PNG.

Every figure that the baseline also has is given as a ratio to the baseline measured in the same run:
RTFx ratios above 1 mean faster than PocketSphinx, WER/CER ratios below 1 mean more accurate.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

from ..io import atomic_write_json, atomic_write_text
from ..paths import resolve_path
from ..results import accuracy_speed_points, points_from_result
from .plot import plot_accuracy_speed, speed_only_points

RATIO_KEYS = ("rtfx_1_thread", "rtfx_thread_cpu", "rtfx_all_threads", "rtfx_batched", "rtfx_cuda", "rtfx_streaming", "wer", "cer")


def _get(d: Optional[dict], *keys: str):
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def headline(entry: dict) -> dict:
    """The figures of one system (or the baseline) that have a counterpart in the others."""
    batch1 = _get(entry, "speed", "batch1") or {}
    cpu = {k: v for k, v in batch1.items() if k.startswith("threads=")}
    most = max(cpu, key=lambda k: int(k.split("=")[1])) if cpu else None
    return {
        "rtfx_1_thread": _get(cpu, "threads=1", "rtfx"),
        "rtfx_thread_cpu": _get(cpu, "threads=1", "rtfx_thread_cpu"),
        "rtfx_all_threads": _get(cpu, most, "rtfx") if most and most != "threads=1" else None,
        "rtfx_batched": _get(entry, "speed", "batched", "rtfx"),
        "rtfx_cuda": _get(batch1, "cuda", "rtfx"),
        "rtfx_streaming": _get(entry, "streaming", "rtfx"),
        "wer": entry.get("wer"), "cer": entry.get("cer"),
    }


def _ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    if value is None or base is None or base == 0 or not math.isfinite(value) or not math.isfinite(base):
        return None
    return value / base


def add_ratios(result: dict) -> None:
    """Put `ratios` (to the baseline's one-thread, batch-1 figures) into every system of `result`.

    The baseline decodes on one thread only, so every RTFx of a system is divided by the baseline's RTFx.
    """
    base = headline(result.get("baseline") or {})
    base_rtfx, base_wer, base_cer = base["rtfx_1_thread"], base["wer"], base["cer"]
    denominators = {"wer": base_wer, "cer": base_cer, "rtfx_thread_cpu": base["rtfx_thread_cpu"]}
    for entry in [*result.get("references", []), *result.get("systems", [])]:
        mine = headline(entry)
        entry["ratios"] = {key: _ratio(mine[key], denominators.get(key, base_rtfx)) for key in RATIO_KEYS}


# --- Markdown -------------------------------------------------------------------------------------------------
def _num(value: Optional[float], digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _cell(value: Optional[float], ratio: Optional[float] = None, digits: int = 3) -> str:
    text = _num(value, digits)
    return f"{text} ({ratio:.2f}x)" if ratio is not None and text != "-" else text


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(result: dict) -> str:
    """The report as Markdown: the machine, the audio, and one table each for speed/accuracy, streaming, training."""
    m, c = result["machine"], result["corpus"]
    threads = result["options"]["threads"]
    batch = result["options"]["batch_size"]
    most = max(threads)
    lines = [f"# asr-poc bench, {result['created']}", "",
             f"- machine: {m['summary']}; torch {m['torch']}, {m['torch_threads']} threads by default",
             f"- load average (1, 5, 15 min) at start {m.get('load_average_start')}, at end "
             f"{m.get('load_average_end')} (other processes share the cores: figures under load are noisy)",
             f"- audio: {c['utterances']} utterances, {c['audio_seconds']:.1f} s, {c['dataset']}/{c['split']} "
             f"({c['path']}), the same files for every system",
             f"- decoding (the config's `decoding` section; streaming stays greedy): "
             f"{', '.join(sorted({str(s.get('decoding_method', 'greedy')) for s in result['systems']})) or 'greedy'}",
             f"- RTFx = audio seconds / compute seconds (higher is faster); median of {result['options']['repeats']} "
             f"repeats per call; ratios in brackets are to the baseline measured in this run; 'by thread CPU "
             f"time' counts only the CPU time of the decoding thread, so it is the same on an idle or a busy machine",
             ""]
    base = result.get("baseline") or {}
    lines += [_row(["system", "params", "WER", "CER", "RTFx batch 1, 1 thread", "same, by thread CPU time",
                    f"RTFx batch 1, {most} threads" if most > 1 else "RTFx batch 1, more threads", f"RTFx batch {batch}, {most} threads", "RTFx CUDA batch 1"]),
              _row(["---"] * 9)]
    if base.get("available"):
        h = headline(base)
        lines.append(_row([f"{base['name']} {base.get('version', '')} (baseline)", "-", _num(h["wer"]), _num(h["cer"]),
                           _num(h["rtfx_1_thread"]), _num(h["rtfx_thread_cpu"]), "-", "-", "-"]))
    else:
        lines.append(_row([f"{base.get('name', 'baseline')} (baseline)", base.get("reason", "n/a"), *["-"] * 7]))
    for ref in result.get("references", []):
        if not ref.get("available"):
            lines.append(_row([f"{ref['name']} (reference)", ref.get("reason", "n/a"), *["-"] * 7]))
            continue
        h, r = headline(ref), ref.get("ratios", {})
        lines.append(_row([f"{ref['name']} {ref.get('version', '')} (reference)", "-", _cell(h["wer"], r.get("wer")),
                           _cell(h["cer"], r.get("cer")), _cell(h["rtfx_1_thread"], r.get("rtfx_1_thread")),
                           _cell(h["rtfx_thread_cpu"], r.get("rtfx_thread_cpu")), "-", "-", "-"]))
    for s in result["systems"]:
        h, r = headline(s), s.get("ratios", {})
        lines.append(_row([s["name"], f"{s['parameters'] / 1e6:.2f}M", _cell(h["wer"], r.get("wer")),
                           _cell(h["cer"], r.get("cer")), _cell(h["rtfx_1_thread"], r.get("rtfx_1_thread")),
                           _cell(h["rtfx_thread_cpu"], r.get("rtfx_thread_cpu")),
                           _cell(h["rtfx_all_threads"], r.get("rtfx_all_threads")),
                           _cell(h["rtfx_batched"], r.get("rtfx_batched")), _cell(h["rtfx_cuda"], r.get("rtfx_cuda"))]))
    lines += ["", "## Streaming (one thread)", "",
              _row(["system", "chunk ms", "look-ahead ms", "algorithmic latency ms", "compute/chunk p50 ms",
                    "compute/chunk p95 ms", "p95 / chunk", "speech-to-text latency p95 ms", "streamed WER", "streamed CER",
                    "full-context WER", "full-context CER"]),
              _row(["---"] * 12)]
    for s in result["systems"]:
        st = s.get("streaming") or {}
        if not st.get("available"):
            lines.append(_row([s["name"], st.get("reason", "n/a"), *["-"] * 10]))
            continue
        lines.append(_row([s["name"], _num(st["chunk_ms"]), _num(st["lookahead_ms"]), _num(st["algorithmic_latency_ms"]),
                           _num(st["chunk_compute_ms_p50"], 2), _num(st["chunk_compute_ms_p95"], 2),
                           f"{100 * st['chunk_compute_fraction_p95']:.1f}%", _num(st["latency_ms_p95"]),
                           _num(st.get("wer")), _num(st.get("cer")), _num(st.get("full_context_wer")),
                           _num(st.get("full_context_cer"))]))
    lines += ["", "## Training throughput (the real trainer, fresh weights, SpecAugment as configured)", "",
              _row(["system", "audio s per wall s", "model step alone, audio s/s (trainer's share)",
                    "beside a busy core (of idle; busy loop kept; load)", "step ms p50",
                    "batch", "threads", "cores kept busy", "device", "peak RSS MiB", "RSS at start MiB",
                    "peak CUDA MiB"]), _row(["---"] * 12)]
    for s in result["systems"]:
        t = s.get("training") or {}
        if t.get("available") is False:
            lines.append(_row([s["name"], t.get("reason", "n/a"), *["-"] * 10]))
            continue
        lines.append(_row([s["name"], _num(t.get("audio_seconds_per_second"), 1), _model_step(t), _beside_busy(t),
                           _num(t.get("step_ms_p50"), 0),
                           str(t.get("batch_size")), str(t.get("threads")), _num(t.get("cores_used"), 2),
                           str(t.get("device")),
                           _num(t.get("peak_rss_mb"), 0), _num(t.get("rss_at_start_mb"), 0),
                           _num(t.get("peak_cuda_mb"), 0)]))
    from .decoding import report_sections  # greedy vs beam (--lm), eager vs ONNX vs int8 (--export)

    lines += report_sections(result)
    return "\n".join(lines) + "\n"


def _model_step(training: dict) -> str:
    """'250.3 (78%)': the model step alone on batches held on the device, and the trainer's share of it."""
    alone, share = training.get("model_step_audio_seconds_per_second"), training.get("share_of_model_step")
    return f"{alone:.1f} ({100 * share:.0f}%)" if alone and share else "-"


def _beside_busy(training: dict) -> str:
    """'61.0 (52%; 95%; load 2.1)': audio s/s beside a busy core, share of the idle figure, the busy loop's share."""
    b = training.get("beside_busy_core") or {}
    rate, idle = b.get("audio_seconds_per_second"), training.get("audio_seconds_per_second")
    if not rate:
        return b.get("reason", "-")
    share = f"{100 * rate / idle:.0f}%" if idle else "-"
    kept = f"{100 * b['busy_loop_share']:.0f}%" if b.get("busy_loop_share") else "-"
    load = (b.get("load_average") or [None])[0]
    return f"{rate:.1f} ({share}; {kept}; load {load:.1f})" if load is not None else f"{rate:.1f} ({share}; {kept})"


# --- files ----------------------------------------------------------------------------------------------------
def write_report(result: dict, out: str | Path, name: Optional[str] = None, root: Optional[str] = None) -> dict:
    """Write `<name>.json`, `<name>.md` and `<name>.png` (accuracy vs speed of all runs) under `out`."""
    out_dir = resolve_path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}.png"}
    result["files"] = {k: str(v) for k, v in paths.items()}
    points = accuracy_speed_points(root, results_dir=out_dir, extra=points_from_result(result, str(paths["json"])))
    plot_accuracy_speed(points, paths["plot"], title=f"accuracy vs speed, {result['machine']['summary']}",
                        speed_only=speed_only_points(result))
    atomic_write_text(paths["markdown"], markdown(result))
    atomic_write_json(paths["json"], result)
    return result["files"]
