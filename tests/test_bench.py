"""`asr-poc bench`: figures, ratios to the baseline, report files, the baseline itself and the plot's points."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from asr_poc.bench import BenchOptions, run_bench
from asr_poc.bench.report import add_ratios, headline
from asr_poc.bench.training import throughput_from_events

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data_override(corpus: Path) -> list[str]:
    return [f"datasets.synthetic.path={corpus}"]


def _rtfx(entry: dict, key: str = "threads=1") -> float:
    return entry["speed"]["batch1"][key]["rtfx"]


def test_preset_bench_measures_speed_training_and_writes_report(small_corpus: Path, tmp_path: Path):
    """An untrained xs preset: speed on 1 and all threads, batched, the real trainer's throughput, the baseline."""
    out = tmp_path / "results"
    result = run_bench(BenchOptions(
        systems=["conformer:xs"], overrides=[*_data_override(small_corpus), "training.batch_size=4"], limit=3, repeats=1, batch_size=2,
        train_steps=2, train_warmup=1, stream_files=2, root=str(tmp_path / "runs"), out=str(out), name="preset",
        progress=False))

    assert result["corpus"]["utterances"] == 3 and result["corpus"]["audio_seconds"] > 1
    assert result["machine"]["cores"] >= 1 and "CPU" in result["machine"]["summary"]
    base = result["baseline"]
    assert base["available"] and _rtfx(base) > 0 and len(base["transcripts"]) == 3
    system = result["systems"][0]
    assert system["kind"] == "preset" and not system["trained"] and system["wer"] is None
    assert 2_000_000 < system["parameters"] < 3_500_000
    assert _rtfx(system) > 1 and system["speed"]["batched"]["batch_size"] == 2
    assert system["ratios"]["rtfx_1_thread"] == pytest.approx(_rtfx(system) / _rtfx(base))
    assert system["ratios"]["wer"] is None  # untrained: no accuracy, no accuracy ratio
    streaming = system["streaming"]
    assert streaming["available"] or streaming["reason"].startswith("n/a")
    training = system["training"]
    assert training["audio_seconds_per_second"] > 0 and training["steps_measured"] == 2
    assert training["batch_size"] == 4 and training["path"].startswith("asr_poc.training.trainer.train")
    assert training["peak_rss_mb"] >= training["rss_at_start_mb"] > 0
    # the model step alone on batches held in memory, and the trainer's share of it (data loading is the difference)
    assert training["model_step_audio_seconds_per_second"] > 0
    assert training["share_of_model_step"] == pytest.approx(
        training["audio_seconds_per_second"] / training["model_step_audio_seconds_per_second"])
    busy = training["beside_busy_core"]  # a background run beside a pure-Python busy loop
    assert busy["audio_seconds_per_second"] > 0 and busy["busy_loop_share"] > 0 and len(busy["load_average"]) == 3
    assert busy["thread_settings"]["policy"] == "auto" and busy["thread_settings"]["env_before_torch"]

    files = {k: Path(v) for k, v in result["files"].items()}
    assert files["json"] == out / "preset.json" and files["markdown"] == out / "preset.md"
    saved = json.loads(files["json"].read_text())
    assert saved["systems"][0]["ratios"]["rtfx_1_thread"] == pytest.approx(system["ratios"]["rtfx_1_thread"])
    md = files["markdown"].read_text()
    assert f"| conformer:xs | {system['parameters'] / 1e6:.2f}M |" in md and "(baseline)" in md and "x) |" in md
    assert "## Streaming" in md and "## Training throughput" in md and "beside a busy core" in md
    assert f"{training['model_step_audio_seconds_per_second']:.1f} ({100 * training['share_of_model_step']:.0f}%)" in md
    assert files["plot"].read_bytes()[:8] == PNG_MAGIC


def test_trained_checkpoint_bench_from_the_command_line(trained_run, tmp_path: Path, capsys):
    """A trained run by its folder: WER/CER on the same files as the baseline, ratios, and the plot's points."""
    from asr_poc.results import accuracy_speed_points
    from asr_poc.cli import main

    corpus = trained_run.config["datasets"]["synthetic"]["path"]
    out = tmp_path / "results"
    code = main(["bench", str(trained_run.path), "--limit", "4", "--repeats", "1", "--batch-size", "4",
                 "--threads", "1", "--no-training", "--out", str(out), "--name", "trained", "--root",
                 str(trained_run.root), "--json", "--set", f"datasets.synthetic.path={corpus}"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    system, base = result["systems"][0], result["baseline"]
    assert system["kind"] == "checkpoint" and system["trained"] and system["source"].endswith("best.pt")
    assert 0 <= system["cer"] < 0.8 and system["wer"] >= 0  # trained: it transcribes (roughly)
    assert len(system["transcripts"]) == len(base["transcripts"]) == 4
    assert [t["id"] for t in system["transcripts"]] == [t["id"] for t in base["transcripts"]]  # the same files
    assert system["ratios"]["wer"] == pytest.approx(system["wer"] / base["wer"])
    assert system["ratios"]["cer"] == pytest.approx(system["cer"] / base["cer"])
    assert system["ratios"]["rtfx_all_threads"] is None  # only one thread count was asked for

    points = accuracy_speed_points(trained_run.root, results_dir=out)
    mine = [p for p in points if p["run"] == trained_run.id]
    assert len(mine) == 1 and mine[0]["cer"] == pytest.approx(system["cer"])
    assert mine[0]["rtfx"] == pytest.approx(_rtfx(system)) and mine[0]["bench_file"].endswith("trained.json")
    assert [p["kind"] for p in points].count("baseline") == 1
    assert Path(result["files"]["plot"]).read_bytes()[:8] == PNG_MAGIC


def test_pocketsphinx_transcribes_espeak_speech(small_corpus: Path):
    from asr_poc.bench.baseline import measure_baseline
    from asr_poc.config import load_config
    from asr_poc.bench.corpus import load_corpus
    from asr_poc.evaluation import error_rates

    corpus = load_corpus(load_config(None, _data_override(small_corpus)), "test", limit=3)
    figures, texts = measure_baseline(corpus.at_rate(16000), 16000)
    assert len(texts) == 3 and all(t.strip() for t in texts)
    assert figures["rtfx"] > 0.3 and figures["threads"] == 1
    assert error_rates(corpus.texts, texts)["cer"] < 0.9  # it recognises some of it (0.6 on 40 sentences)


def test_ratios_are_to_the_baseline_of_the_same_run():
    def entry(rtfx1, rtfx2, wer, cer):
        speed = {"batch1": {"threads=1": {"rtfx": rtfx1}, **({"threads=2": {"rtfx": rtfx2}} if rtfx2 else {})}}
        return {"speed": speed, "wer": wer, "cer": cer}

    result = {"baseline": entry(4.0, None, 0.8, 0.5), "systems": [entry(200.0, 300.0, 0.2, 0.05)]}
    add_ratios(result)
    ratios = result["systems"][0]["ratios"]
    assert ratios["rtfx_1_thread"] == pytest.approx(50) and ratios["rtfx_all_threads"] == pytest.approx(75)
    assert ratios["wer"] == pytest.approx(0.25) and ratios["cer"] == pytest.approx(0.1)
    assert ratios["rtfx_cuda"] is None and headline(result["baseline"])["rtfx_all_threads"] is None
    no_base = {"baseline": {"available": False}, "systems": [entry(200.0, None, 0.2, 0.05)]}
    add_ratios(no_base)
    assert all(v is None for v in no_base["systems"][0]["ratios"].values())


def test_throughput_counts_only_steps_after_the_warmup():
    steps = [{"time": 100.0, "audio_seconds_per_second": 1.0},  # warm-up: slow, excluded
             {"time": 101.0, "audio_seconds_per_second": 40.0},
             {"time": 101.5, "audio_seconds_per_second": 100.0},
             {"time": 102.0, "audio_seconds_per_second": 100.0}]
    figures = throughput_from_events(steps, warmup=1)
    assert figures["steps_measured"] == 3
    assert figures["audio_seconds_per_second"] == pytest.approx((40 + 50 + 50) / 2.0)
    with pytest.raises(RuntimeError):
        throughput_from_events(steps[:1], warmup=1)


def test_points_of_runs_never_benched_come_from_their_training(tmp_path: Path):
    from asr_poc.bench.plot import plot_accuracy_speed
    from asr_poc.results import accuracy_speed_points
    from asr_poc.config import load_config
    from asr_poc.runs import Run

    cfg = load_config(None, [f"checkpoint_dir={tmp_path}"], check_data=False)
    evaluated, fresh = Run.create(cfg), Run.create(cfg)
    evaluated.append_event({"type": "eval", "step": 10, "epoch": 1, "wer": 0.5, "cer": 0.2, "rtf": 0.01})
    evaluated.write_status(best_cer=0.2, best_wer=0.5, num_parameters=123)
    points = {p["run"]: p for p in accuracy_speed_points(tmp_path, results_dir=tmp_path / "no-results")}
    assert points[evaluated.id]["cer"] == 0.2 and points[evaluated.id]["rtfx"] == pytest.approx(100)
    assert points[evaluated.id]["rtfx_source"].startswith("last dev evaluation")
    assert points[fresh.id]["cer"] is None and points[fresh.id]["rtfx"] is None
    png = plot_accuracy_speed(list(points.values()), tmp_path / "plot.png")
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_streaming_figures_or_a_reason(small_corpus: Path):
    """A model that does not stream says so; a streaming preset (when one exists) gets latency figures."""
    from asr_poc.bench.streaming import measure_streaming
    from asr_poc.bench.systems import load_system
    from asr_poc.plugins import PluginNotFound

    ctc = load_system("conformer:xs", None, _data_override(small_corpus)).model
    wav = [np.zeros(16000, dtype=np.float32)]
    figures, texts = measure_streaming(ctc, wav, 16000)
    if not getattr(ctc, "streaming", False):
        assert figures == {"available": False, "reason": figures["reason"]} and texts is None
        assert figures["reason"].startswith("n/a:")
    try:
        rnnt = load_system("rnn-t:xs", None, _data_override(small_corpus)).model
    except (PluginNotFound, Exception) as err:  # the streaming model may not exist yet
        pytest.skip(f"no rnn-t preset to stream: {err}")
    figures, texts = measure_streaming(rnnt, wav * 2, 16000)
    if not figures["available"]:
        pytest.skip(figures["reason"])
    assert figures["algorithmic_latency_ms"] >= figures["chunk_ms"] > 0
    assert figures["chunks"] >= 2 * math.floor(1000 / figures["chunk_ms"])
    assert 0 < figures["chunk_compute_ms_p50"] <= figures["chunk_compute_ms_p95"]
    assert figures["latency_ms_p95"] == pytest.approx(figures["algorithmic_latency_ms"] + figures["chunk_compute_ms_p95"])
    assert len(texts) == 2


def test_streamed_and_full_context_error_rates_are_on_the_same_files():
    from asr_poc.bench.streaming import streamed_and_full_context

    refs = ["a cat", "the dog", "not streamed"]
    rates = streamed_and_full_context(refs, ["a cat", "the dog", "xxxx"], ["a cat", "the fog"])
    assert rates["files_compared"] == 2 and rates["full_context_wer"] == 0.0 and rates["full_context_cer"] == 0.0
    assert rates["wer"] == pytest.approx(1 / 4) and rates["cer"] == pytest.approx(1 / 12)
