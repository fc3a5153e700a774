"""`run_bench`: measure every system and the baseline on the same audio in one run, then write the report."""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from ..config import load_config
from ..decoding.beam import decoded_model
from ..evaluation import error_rates
from . import baseline, machine, report
from .corpus import BenchCorpus, load_corpus
from .speed import measure_speed
from .streaming import measure_streaming, streamed_and_full_context
from .systems import load_system
from .sharing import measure_training_beside_busy_core
from .training import measure_training

SAMPLES_KEPT = 1000  # transcripts kept in the JSON per system (all of a typical test split)


@dataclass
class BenchOptions:
    """What to measure and how; the defaults are what `asr-poc bench` does without options."""

    systems: list[str] = field(default_factory=list)  # checkpoints, runs, presets; empty: the config's model, xs
    config_path: Optional[str] = None
    overrides: list[str] = field(default_factory=list)
    dataset: Optional[str] = None
    split: str = "test"
    limit: Optional[int] = None
    threads: list[int] = field(default_factory=list)  # empty: 1 and all (torch's default)
    batch_size: int = 16
    repeats: int = 3
    baseline: bool = True
    references: list[str] = field(default_factory=lambda: ["whisper-tiny.en"])  # beside the baseline (asr_poc.references)
    streaming: bool = True
    stream_files: Optional[int] = 20
    training: bool = True
    train_steps: int = 20
    train_warmup: int = 3
    train_beside_busy: bool = True  # also train beside a busy core (asr_poc/bench/sharing.py)
    cuda: bool = True
    lm_path: Optional[str] = None  # an `asr-poc lm build` folder: also greedy vs beam search (bench/decoding.py)
    export: bool = False  # also eager vs ONNX vs int8 of each checkpoint (bench/export.py)
    root: Optional[str] = None  # runs folder, for the plot of all runs
    out: Optional[str] = "benchmarks/results"
    name: Optional[str] = None  # file stem of the report; default bench-<time>
    progress: bool = True


def _say(options: BenchOptions, text: str) -> None:
    if options.progress:
        print(text, file=sys.stderr, flush=True)


def run_bench(options: BenchOptions) -> dict:
    """Measure, compute ratios to the baseline, write JSON/Markdown/PNG under `options.out`; return the result."""
    overrides = [*options.overrides, *([f"dataset={options.dataset}"] if options.dataset else [])]
    cfg = load_config(options.config_path, overrides)
    threads_all = machine.describe()["torch_threads"]
    threads = sorted(set(options.threads or [1, threads_all]))
    specs = options.systems or [f"{cfg['model']}:{cfg['models'][cfg['model']].get('size', 'xs')}"]
    result: dict = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine.describe(),
                    "options": {**asdict(options), "threads": threads, "systems": specs}}
    _say(options, f"bench on {result['machine']['summary']}; load average {result['machine']['load_average_start']}")
    corpus = load_corpus(cfg, options.split, options.limit, progress=options.progress)
    result["corpus"] = corpus.describe()
    _say(options, f"{len(corpus)} files, {corpus.audio_seconds:.0f} s of audio from {corpus.dataset}/{corpus.split}")

    result["baseline"] = _bench_reference(baseline.NAME, corpus, options, options.baseline, "--no-baseline")
    result["references"] = [_bench_reference(name, corpus, options, options.baseline, "--no-baseline")
                            for name in options.references]
    result["systems"] = []
    for spec in specs:
        result["systems"].append(_bench_system(spec, corpus, threads, options))
    result["machine"]["load_average_end"] = machine.load_average()
    report.add_ratios(result)
    if options.out:
        result["files"] = report.write_report(result, options.out, options.name, root=options.root)
    return result


def _bench_reference(name: str, corpus: BenchCorpus, options: BenchOptions, enabled: bool, flag: str) -> dict:
    """A reference recogniser (PocketSphinx, the baseline; Whisper tiny.en) on the same files, one thread."""
    entry: dict = {"name": name, "kind": "baseline" if name == baseline.NAME else "reference"}
    if not enabled:
        return {**entry, "available": False, "reason": f"skipped ({flag})"}
    reason = baseline.available(name)
    if reason:
        return {**entry, "available": False, "reason": reason}
    _say(options, f"reference: {name} (one thread)")
    figures, texts = baseline.measure_baseline(corpus.at_rate(baseline.SAMPLE_RATE), baseline.SAMPLE_RATE,
                                               progress=options.progress, name=name)
    from ..references import REFERENCES

    entry.update(available=True, version=REFERENCES[name].version(), parameters=None,
                 speed={"batch1": {"threads=1": figures}}, **_accuracy(corpus, texts))
    return entry


def _bench_system(spec: str, corpus: BenchCorpus, threads: list[int], options: BenchOptions) -> dict:
    system = load_system(spec, options.config_path, options.overrides, root=options.root)
    entry = system.describe()
    _say(options, f"{system.name}: {entry['parameters']:,} parameters ({system.kind})")
    waveforms = corpus.at_rate(system.model.sample_rate)
    decoded, decoding = decoded_model(system.model, _decoding_section(options))  # streaming below stays greedy
    entry["decoding_method"] = decoding.label()
    speed, texts = measure_speed(decoded, waveforms, system.model.sample_rate, threads, options.batch_size,
                                 options.repeats, cuda=options.cuda, progress=options.progress)
    entry["speed"] = speed
    if system.trained:
        entry.update(_accuracy(corpus, texts))
    else:
        entry.update(wer=None, cer=None, accuracy_note="untrained preset: speed only")
    if system.trained and (options.lm_path or options.export):
        from .decoding import decoding_and_export

        _say(options, f"{system.name}: " + " and ".join(["greedy vs beam search"] * bool(options.lm_path)
                                                         + ["eager vs ONNX vs int8"] * options.export))
        entry.update(decoding_and_export(system, waveforms, corpus.texts, options.lm_path, options.export,
                                         decoding=_decoding_section(options), repeats=options.repeats))
    if options.streaming:
        streaming, stream_texts = measure_streaming(system.model, waveforms, system.model.sample_rate, threads=1,
                                                    max_files=options.stream_files, progress=options.progress)
        if stream_texts is not None and system.trained:
            streaming.update(streamed_and_full_context(corpus.texts, texts, stream_texts))
        entry["streaming"] = streaming
    else:
        entry["streaming"] = {"available": False, "reason": "skipped (--no-streaming)"}
    if options.training:
        _say(options, f"{system.name}: training throughput ({options.train_warmup} + {options.train_steps} steps, "
                      f"real trainer in a child process)")
        try:
            entry["training"] = measure_training(system.model_name, system.model_section, options.config_path,
                                                 [*options.overrides, *_dataset_override(options)],
                                                 steps=options.train_steps, warmup=options.train_warmup,
                                                 threads=max(threads))
        except Exception as err:  # one system's failure must not lose the others' figures
            entry["training"] = {"available": False, "reason": f"{err.__class__.__name__}: {err}"}
        if options.train_beside_busy and entry["training"].get("available", True):
            _say(options, f"{system.name}: training beside a busy core (a background run beside a busy loop)")
            try:
                entry["training"]["beside_busy_core"] = measure_training_beside_busy_core(
                    system.model_name, system.model_section, options.config_path,
                    [*options.overrides, *_dataset_override(options)], steps=options.train_steps,
                    warmup=options.train_warmup)
            except Exception as err:
                entry["training"]["beside_busy_core"] = {"available": False,
                                                         "reason": f"{err.__class__.__name__}: {err}"}
    else:
        entry["training"] = {"available": False, "reason": "skipped (--no-training)"}
    return entry


def _decoding_section(options: BenchOptions) -> dict:
    """The config's `decoding` section (beam size, LM weight ...) for the beam-search comparison."""
    return load_config(options.config_path, options.overrides, check_data=False)["decoding"]


def _dataset_override(options: BenchOptions) -> list[str]:
    """The data set training throughput is measured on: --dataset, unless it is an evaluation set
    (`training.extra_eval`, e.g. real-check, which has no train split): then the config's own."""
    if not options.dataset:
        return []
    extra = load_config(options.config_path, options.overrides, check_data=False)["training"]["extra_eval"]
    return [] if options.dataset in extra else [f"dataset={options.dataset}"]


def _accuracy(corpus: BenchCorpus, hypotheses: list[str]) -> dict:
    rates = error_rates(corpus.texts, hypotheses)
    samples = [{"id": i, "reference": r, "hypothesis": h}
               for i, r, h in list(zip(corpus.ids, corpus.texts, hypotheses))[:SAMPLES_KEPT]]
    return {"wer": rates["wer"], "cer": rates["cer"], "transcripts": samples}
