"""`asr-poc`: prepare data, train, stop, list runs, evaluate and transcribe from the command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Optional

from . import __version__
from .app import comparison, data, evaluation, export, language_models, runs, settings
from .app import training as app_training
from .app.analysis import csv_path
from .app.evaluation import resolve_device  # noqa: F401 - `asr_poc.cli.resolve_device`, as before
from .app.settings import ConfigError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file merged over configs/default.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key, e.g. --set training.batch_size=8 (repeatable)")


def cmd_prepare(args) -> int:
    if args.name == "real-check":
        print(data.prepare_real_check(args.out or "data/real-check"))
        return 0
    if args.name == "asterisk":
        try:
            out, dropped = data.prepare_asterisk(args.out or "data/asterisk", debs=args.debs)
        except (RuntimeError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print("left out: " + ", ".join(f"{n} ({why})" for why, n in dropped.items()), file=sys.stderr)
        print(out)
        return 0
    if args.name != "synthetic":
        print(f"error: only 'synthetic' can be generated here; get {args.name} yourself and set "
              f"datasets.{args.name}.path", file=sys.stderr)
        return 2
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    try:
        out = data.generate_synthetic(args.out or "data/synthetic", utterances=args.utterances, seed=args.seed,
                                      engines=engines, english_share=args.english_share)
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


def _train_request(args, resume: bool = False) -> app_training.RunRequest:
    """`train`'s arguments as a request: `--set` keys as `extra`, the named flags over them. A resumed run's request
    holds only the changes (its model and data stay; `app.training.resume` refuses anything else)."""
    where = {} if resume else {"config_path": args.config, "root": args.root}  # a resumed run has its own
    return app_training.RunRequest(model=args.model, dataset=args.dataset, minutes=args.minutes,
                                   init_from=args.init_from, extra=app_training.parse_sets(args.overrides), **where)


def cmd_adapt(args) -> int:
    request = app_training.RunRequest(
        config_path=args.config, extra=app_training.parse_sets(args.overrides), root=args.root,
        init_from=args.init_from, adaptation=app_training.Adaptation(speaker=args.speaker, repeat=args.repeat),
        minutes=args.minutes, max_steps=args.steps)
    handle = app_training.start(request, "process" if args.background else "foreground",
                                on_ready=lambda run: print(run.path, flush=True))
    if args.background:
        return 0
    summary = app_training.adaptation_summary(handle.run) or {}
    before, after = summary.get("before") or {}, summary.get("after") or {}
    print(f"{handle.status.get('state')}: {args.speaker or 'everyone'}'s held-out clips: CER "
          f"{_fmt(before.get('cer'))} before, {_fmt(after.get('cer'))} after (best)")
    return 0 if handle.status.get("state") in ("finished", "stopped") else 1


def cmd_train(args) -> int:
    import os

    # `torchrun --nproc_per_node N -m asr_poc train ...` runs this on every rank: rank 0 makes the run, all train it
    under_torchrun, rank_0 = int(os.environ.get("WORLD_SIZE", "1")) > 1, os.environ.get("RANK", "0") == "0"
    if under_torchrun and args.background:
        print("error: --background does not go with torchrun (torchrun is the launcher)", file=sys.stderr)
        return 2
    if args.create_only:
        run = runs.open_run(args.resume, root=args.root) if args.resume else app_training.create(_train_request(args))
        print(run.path)
        return 0
    background = "process" if args.background else "foreground"
    announce = (lambda run: print(run.path, flush=True)) if rank_0 else None
    if args.resume:
        handle = app_training.resume(args.resume, _train_request(args, resume=True), background, root=args.root,
                                     on_ready=announce)
    else:
        handle = app_training.start(_train_request(args), background, on_ready=announce)
    if args.background:
        return 0
    status = handle.status
    if not rank_0:
        return 0 if (handle.ended or status).get("state") in ("finished", "stopped") else 1
    print(f"{status.get('state')}: step {status.get('step')}, epoch {status.get('epoch')}, "
          f"best dev CER {_fmt(status.get('best_cer'))}, WER {_fmt(status.get('best_wer'))}")
    if status.get("error"):
        print(f"error: {status['error']}", file=sys.stderr)
    return 0 if status.get("state") in ("finished", "stopped") else 1


def cmd_stop(args) -> int:
    status = app_training.stop(args.run, root=args.root, timeout=args.timeout)
    if app_training.still_active(status):
        print(f"{args.run}: still {status.get('state')} after {args.timeout:g} s (the stop request stays; "
              f"wait longer with --timeout)", file=sys.stderr)
        return 1
    print(f"{args.run}: {status.get('state')}")
    return 0


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cmd_runs(args) -> int:
    rows = [row.to_dict() for row in runs.run_rows(args.root)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no runs yet: start one with `asr-poc train`")
        return 0
    header = f"{'run':<36} {'state':<11} {'model':<10} {'dataset':<10} {'step':>6} {'CER':>6} {'WER':>6} {'age':>5}"
    print(header)
    for r in rows:
        print(f"{r['run']:<36} {str(r['state']):<11} {str(r['model']):<10} {str(r['dataset']):<10} "
              f"{str(r['step'] or 0):>6} {_fmt(r['best_cer']):>6} {_fmt(r['best_wer']):>6} "
              f"{runs.format_age(r['age_seconds']):>5}")
    return 0


def cmd_eval(args) -> int:
    summary = evaluation.evaluate_checkpoint(
        args.checkpoint, args.dataset, args.split, config_path=args.config, overrides=args.overrides,
        limit=args.limit, batch_size=args.batch_size, device=args.device, details=args.details,
        progress=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.dataset}/{args.split}: {summary['utterances']} utterances, "
              f"{summary['audio_seconds']:.0f} s of audio, decoding: {summary['decoding']}")
        print(f"WER {summary['wer']:.3f}  CER {summary['cer']:.3f}  RTF {summary['rtf']:.4f} "
              f"(RTFx {summary['rtfx']:.0f})")
        if args.details:
            print(f"details: {summary['details']} (and as CSV: {csv_path(summary['details'])})")
    return 0


def cmd_transcribe(args) -> int:
    from tqdm import tqdm

    results = []
    bar = tqdm(evaluation.transcribe_files(args.checkpoint, args.files, device=args.device), total=len(args.files),
               desc="transcribing", unit="file", file=sys.stderr, dynamic_ncols=True,
               disable=len(args.files) < PROGRESS_MIN_FILES)
    Failure = evaluation.Failure  # torch: loaded only by the commands that need it
    for r in bar:  # a line per file as soon as it is done; the bar (stderr) stays below the lines
        results.append(r)
        if args.json:
            line = json.dumps(r.to_dict())
        elif isinstance(r, Failure):
            line = f"{r.source}: ERROR: {r.error}"
        else:
            line = f"{r.source}: {r.text}"
        tqdm.write(line, file=sys.stdout)
    return 1 if any(isinstance(r, Failure) for r in results) else 0


PROGRESS_MIN_FILES = 5  # `transcribe` shows a progress bar from this many files on


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one, else the CPU), cpu, cuda, "
                   "cuda:N or mps")


def cmd_config_show(args) -> int:
    print(settings.config_yaml(args.config, args.overrides, check_data=args.check_data), end="")
    return 0


def cmd_bench(args) -> int:
    import importlib.util

    if not args.no_write and importlib.util.find_spec("matplotlib") is None:  # say so before minutes of measuring
        print("error: the bench's plot needs matplotlib: pip install 'asr-poc[bench]' (or use --no-write)",
              file=sys.stderr)
        return 2
    BenchOptions = comparison.BenchOptions  # torch: loaded only by the commands that need it
    options = BenchOptions(
        systems=args.systems, config_path=args.config, overrides=args.overrides, dataset=args.dataset,
        split=args.split, limit=args.limit, threads=args.threads or [], batch_size=args.batch_size,
        repeats=args.repeats, baseline=not args.no_baseline, streaming=not args.no_streaming,
        references=[] if args.no_references else (args.reference or BenchOptions().references),
        training=not args.no_training, train_steps=args.train_steps, train_beside_busy=not args.no_busy_core,
        cuda=not args.no_cuda, root=args.root,
        lm_path=args.lm, export=args.export,
        out=None if args.no_write else args.out, name=args.name, progress=not args.json)
    result = comparison.run_bench(options)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(comparison.report_markdown(result))
        for kind, path in (result.get("files") or {}).items():
            print(f"{kind}: {path}")
    return 0


def cmd_dashboard(args) -> int:
    from .ui.serve import serve  # Voila and jupyter_server: only the dashboard needs them

    return serve(port=args.port, open_browser=args.open, config=args.config, token=args.token, ip=args.ip,
                 hosts=args.allow_host, cull_after=args.cull_after)


def cmd_lm_build(args) -> int:
    hotwords = language_models.parse_hotwords(args.hotwords or [])
    if args.source == "english":
        manifest = language_models.build_english_lm(args.out, vocabulary=args.vocabulary or None,
                                                    char_order=args.char_order, hotwords=hotwords)
        what = f"PocketSphinx's English {manifest['order']}-gram" + (f", its {args.vocabulary} likeliest words"
                                                                   if args.vocabulary else "")
    else:
        if args.text:
            texts = [s for path in args.text for s in language_models.text_file_sentences(path)]
            source = {"text": [str(p) for p in args.text]}
        else:
            cfg = settings.load_config(args.config, [f"dataset={args.dataset}", *args.overrides])
            texts = language_models.dataset_texts(cfg, args.dataset, args.split)
            source = {"dataset": args.dataset, "split": args.split}
        manifest = language_models.build_lm(texts, args.out, order=args.order, char_order=args.char_order,
                                            hotwords=hotwords, source=source)
        what = f"{manifest['sentences']} sentences, {args.order}-gram word LM"
    print(f"{args.out}: {what} ({' / '.join(map(str, manifest['ngrams']))} n-grams), {manifest['lexicon_words']} "
          f"words in the lexicon, {args.char_order}-gram character LM")
    print(f"use it: --set decoding.method=beam --set decoding.lm_path={args.out}")
    return 0


def cmd_export(args) -> int:
    result = export.export_run(args.run, root=args.root, int8=args.int8, out_dir=args.out, streaming=args.streaming)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['onnx']} ({result['onnx_bytes'] / 1e6:.1f} MB, {result['export_seconds']:.0f} s)")
        if args.int8:
            print(f"{result['int8']} ({result['int8_bytes'] / 1e6:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-poc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build an offline corpus (LJSpeech layout): the espeak-ng synthetic corpus, "
                       "or real-check, the real-speech check set shipped in the package")
    p.add_argument("name", choices=["synthetic", "real-check", "asterisk"], help="corpus to build (asterisk: "
                   "real speech to train on, the Asterisk prompts from Debian packages)")
    p.add_argument("--out", help="folder (default: data/<name>)")
    p.add_argument("--debs", help="asterisk: folder holding the two .deb files (default: apt-get download them)")
    p.add_argument("--utterances", type=int, default=1500, help="synthetic: number of utterances (default 1500)")
    p.add_argument("--seed", type=int, default=0, help="synthetic: random seed of sentences and voices (default 0)")
    p.add_argument("--engines", default="espeak,festival",
                   help="synthetic: voice engines, comma-separated (espeak, festival); default espeak,festival")
    p.add_argument("--english-share", type=float, metavar="SHARE",
                   help="synthetic: share (0-1) of sentences sampled from PocketSphinx's English 3-gram (open "
                   "vocabulary) instead of the grammar (default: asr_poc.datasets.synthetic.DEFAULT_ENGLISH_SHARE)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model; prints the run folder")
    _add_config_args(p)
    p.add_argument("--model", help="shortcut for --set model=NAME")
    p.add_argument("--dataset", help="shortcut for --set dataset=NAME")
    p.add_argument("--minutes", type=float, help="wall-clock budget (training.max_minutes)")
    p.add_argument("--resume", metavar="RUN", help="continue a run (its folder or id) from last.pt; "
                   "--minutes and --set training.* may change its budget")
    p.add_argument("--background", action="store_true", help="start a separate process and return at once")
    p.add_argument("--init-from", metavar="CHECKPOINT", help="start from these weights and vocabulary "
                   "(training.init_checkpoint)")
    p.add_argument("--create-only", action="store_true",
                   help="only create the run folder and print it (e.g. for torchrun -m asr_poc.training.worker)")
    p.add_argument("--root", help="checkpoint folder (default: checkpoint_dir of the config)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("adapt", help="adapt a checkpoint to a speaker: a new run on the synthetic corpus mixed with "
                       "their recordings (data/recordings, saved in the dashboard's Record tab)")
    _add_config_args(p)
    p.add_argument("--from", dest="init_from", required=True, metavar="CHECKPOINT", help="checkpoint to start from")
    p.add_argument("--speaker", help="whose recordings (default: everyone's)")
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget (default 5)")
    p.add_argument("--steps", type=int, help="stop after this many steps instead")
    p.add_argument("--repeat", type=int, help="times each recording is seen per pass over the corpus "
                   "(default: enough for a quarter of each epoch, at least 8)")
    p.add_argument("--background", action="store_true", help="start a separate process and return at once")
    p.add_argument("--root", help="checkpoint folder (default: checkpoint_dir of the config)")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("stop", help="ask a running run to stop after a final checkpoint")
    p.add_argument("run", help="run folder or id")
    p.add_argument("--root", help="checkpoint folder (default: checkpoint_dir of the config)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the run to stop (default 60)")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("runs", help="list runs as a table")
    p.add_argument("--root", default=None, help="checkpoint folder (default: checkpoint_dir of the config)")
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("eval", help="WER, CER and real-time factor of a checkpoint on a data set split")
    p.add_argument("checkpoint", help="checkpoint file (.pt), or a run (folder or id): its best.pt, else last.pt")
    p.add_argument("--dataset", default="synthetic", help="data set name from the config (default synthetic)")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"], help="split to score (default test)")
    p.add_argument("--limit", type=int, help="only the first N utterances")
    p.add_argument("--batch-size", type=int, default=8, help="utterances decoded together (default 8)")
    _add_device_arg(p)
    p.add_argument("--json", action="store_true", help="print the figures as JSON (no progress output)")
    p.add_argument("--details", action="store_true", help="also write each utterance's reference, hypothesis, WER, "
                   "CER and word alignment to details/<checkpoint>-<dataset>-<split>.jsonl (and .csv) beside the checkpoint "
                   "(the dashboard's Runs tab shows them)")
    _add_config_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="speed, latency, training throughput and accuracy beside a baseline")
    p.add_argument("systems", nargs="*", metavar="SYSTEM",
                   help="checkpoint (.pt), run folder or id, or untrained preset such as conformer:xs or "
                        "rnn-t:xs,chunk_ms=80 (default: the config's model at size xs)")
    p.add_argument("--dataset", help="data set whose split is decoded (default: the config's)")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"], help="split to decode (default test)")
    p.add_argument("--limit", type=int, help="only the first N utterances of the split")
    p.add_argument("--threads", type=int, action="append", metavar="N",
                   help="CPU thread counts for batch-1 decoding (repeatable; default 1 and all)")
    p.add_argument("--batch-size", type=int, default=16, help="batch for the throughput figure (1: skip it)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per call; the median counts")
    p.add_argument("--train-steps", type=int, default=20, help="training steps timed after 3 warm-up steps")
    p.add_argument("--no-baseline", action="store_true", help="skip PocketSphinx and the other references")
    p.add_argument("--reference", action="append", default=None, metavar="NAME",
                   help="a reference recogniser beside the baseline, repeatable (default: whisper-tiny.en)")
    p.add_argument("--no-references", action="store_true", help="only PocketSphinx, not Whisper tiny.en")
    p.add_argument("--no-streaming", action="store_true", help="skip the streaming latency")
    p.add_argument("--no-training", action="store_true", help="skip the training throughput")
    p.add_argument("--no-busy-core", action="store_true",
                   help="skip the second training measurement, beside a busy core (a shared machine's figure)")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA figures even when a GPU is there")
    p.add_argument("--lm", metavar="DIR", help="an `asr-poc lm build` folder: also compare greedy and beam search "
                   "(lexicon + word LM, lexicon-free + character LM) on the same files: WER and RTFx side by side")
    p.add_argument("--export", action="store_true", help="also export each checkpoint to ONNX (fp32, int8) and compare "
                   "eager, ONNX and int8 on the same files: speed-up and WER difference")
    p.add_argument("--root", help="runs folder (default: checkpoint_dir of the config), for run ids and the plot")
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON, Markdown and PNG")
    p.add_argument("--name", help="file name stem of the results (default bench-<date>-<time>)")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.add_argument("--json", action="store_true", help="print the full result as JSON (no progress output)")
    _add_config_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("dashboard", help="serve the dashboard (Voila) on 127.0.0.1 behind a token, without the code "
                       "cells; prints the URL with the token")
    p.add_argument("--port", type=int, default=8866, help="port on --ip (default 8866)")
    p.add_argument("--token", help="the token to require (default: $ASR_POC_TOKEN, else a new random one); "
                   "prefer the variable: a command line is visible to other users")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (0.0.0.0 only inside a container or "
                   "behind a reverse proxy; see the README)")
    p.add_argument("--allow-host", action="append", metavar="NAME", help="a Host name the server answers besides "
                   "localhost/127.0.0.1/::1 (repeatable; default: $ASR_POC_ALLOWED_HOSTS, comma-separated)")
    p.add_argument("--cull-after", type=float, default=300.0, metavar="SECONDS",
                   help="shut down a page's kernel when no page has been connected to it for this long")
    p.add_argument("--open", action="store_true", help="open it in the default browser too")
    p.add_argument("--config", help="YAML file merged over configs/default.yaml for the runs it starts")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("transcribe", help="transcribe audio files with a checkpoint, one line per file")
    p.add_argument("checkpoint", help="checkpoint file (.pt)")
    p.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, MP3, WebM ...)")
    _add_device_arg(p)
    p.add_argument("--json", action="store_true", help="a JSON object per file instead of a line of text")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("lm", help="n-gram language models for beam search")
    lm_sub = p.add_subparsers(dest="lm_command", required=True)
    p = lm_sub.add_parser("build", help="estimate word and character n-gram LMs (Kneser-Ney, ARPA) and a lexicon "
                          "from a data set's transcripts or text files, or write the English LM")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="data set (an entry of `datasets`) whose texts are read")
    source.add_argument("--text", action="append", metavar="FILE", help="a UTF-8 text file (repeatable): its "
                        "sentences, split at . ! ? ; : and blank lines")
    source.add_argument("--source", choices=["english"], help="english: PocketSphinx's US-English 3-gram (in the "
                        "pocketsphinx wheel, CMU's BSD licence) cut to --vocabulary words, its words as the lexicon")
    p.add_argument("--vocabulary", type=int, default=0, help="--source english: keep only the N likeliest words "
                   "(default 0: all 72,242 it has that transcripts can contain)")
    p.add_argument("--split", default="train", choices=["train", "dev", "test"], help="split read (default train)")
    p.add_argument("--order", type=int, default=3, help="word n-gram order (default 3)")
    p.add_argument("--char-order", type=int, default=6, help="character n-gram order for lexicon-free decoding "
                   "(default 6)")
    p.add_argument("--hotwords", action="append", metavar="WORD[:WEIGHT]",
                   help="a word to boost (repeatable); it joins the lexicon even if no text has it")
    p.add_argument("--out", required=True, help="folder to write (words.arpa, chars.arpa, lexicon.txt, ...)")
    _add_config_args(p)
    p.set_defaults(func=cmd_lm_build)

    p = sub.add_parser("export", help="export a run's model to ONNX (next to its checkpoint), optionally int8 too")
    p.add_argument("run", metavar="RUN", help="run id or folder (best.pt, else last.pt), or a checkpoint file")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    p.add_argument("--int8", action="store_true", help="also write <stem>.int8.onnx (dynamic int8 quantisation)")
    p.add_argument("--streaming", action="store_true", help="a streaming whisper-ctc's or conformer's chunk step with "
                   "its state in and out (model-streaming.onnx + tokens.txt), for onnxruntime as sherpa-onnx streams")
    p.add_argument("--out", help="folder for the files (default: the checkpoint's folder)")
    p.add_argument("--root", help="runs folder for run ids (default: checkpoint_dir of the config)")
    p.add_argument("--json", action="store_true", help="print the paths and sizes as JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("config", help="show the configuration")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    p = config_sub.add_parser("show", help="print the resolved config as YAML: configs/default.yaml, then --config, "
                              "then --set, validated, with the model's and data set's presets filled in")
    _add_config_args(p)
    p.add_argument("--check-data", action="store_true", help="also check that the data set's folder exists")
    p.set_defaults(func=cmd_config_show)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable = args.func
    try:
        return func(args)
    except ConfigError as err:
        for line in err.problems:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line, not a traceback; ASR_POC_DEBUG=1 shows it
        import os

        if os.environ.get("ASR_POC_DEBUG"):
            raise
        clear = type(err).__name__ in ("CheckpointRefused", "RunAlreadyActive", "DiskFullError")  # say it all
        print(f"error: {err}" if clear else f"error: {err.__class__.__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
