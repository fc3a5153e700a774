"""GPU figures: training throughput and decoding speed for each size of each model (issue 10).

Three parts, each figure written as one JSON line as soon as it is measured (a budget ends the script early,
keeping what it has):

1. The real trainer on the GPU (`python -m asr_poc train`, the same process a user starts), mixed precision on
   and off, for every model and size: audio seconds trained per second from the run's own `step` events.
2. The model alone on a fixed batch from the corpus, from the checkpoint part 1 wrote: a training step
   (forward + backward) and batched greedy decoding, eager against `torch.compile`, fp32 against bf16 autocast.
   Ratios are against eager fp32 in the same run.
3. DDP through `torchrun` on the GPU (NCCL): the two-step way (`--create-only`, then the worker) and the natural
   command (`torchrun -m asr_poc train`).
4. `pipeline`: the trainer's share of the model step alone, through `asr-poc bench` (issue 22's >= 80% target),
   with the augmentation in the DataLoader workers against on the GPU (`training.augment_in`), bf16.

    python benchmarks/gpu.py --corpus DIR --out results.jsonl [--budget-s 420]
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

MODELS = {"conformer": ["xs", "s", "m"], "rnn-t": ["xs", "s", "m"]}
STEPS, WARMUP = 40, 8


def log(out: Path, record: dict) -> None:
    record = {**record, "loadavg_1m": os.getloadavg()[0], "time": time.time()}
    print(json.dumps(record), flush=True)
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")


def train_run(corpus: str, root: str, model: str, size: str, amp: bool, steps: int = STEPS,
              launcher: list[str] | None = None, device: str = "cuda") -> tuple[dict, Path | None]:
    """Train `steps` steps through the CLI (or `launcher`); return throughput figures and the run folder."""
    sets = [f"model={model}", f"models.{model}.size={size}", f"datasets.synthetic.path={corpus}",
            f"checkpoint_dir={root}", f"training.max_steps={steps}", "training.eval_utterances=0",
            "training.extra_eval=[]", f"training.mixed_precision={str(amp).lower()}", "training.batch_size=32",
            "training.num_workers=8", f"training.device={device}"]
    if model == "rnn-t":
        sets.append("models.rnn-t.ctc_warmup_steps=0")  # the transducer's own step, not the CTC warm-up's
    cmd = (launcher or [sys.executable, "-m", "asr_poc"]) + ["train", "--dataset", "synthetic"]
    for s in sets:
        cmd += ["--set", s]
    started = time.perf_counter()
    try:
        child = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 300 s"}, None
    wall = time.perf_counter() - started
    runs = sorted(Path(root).glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime)
    if child.returncode != 0 or not runs:
        return {"error": (child.stderr.strip().splitlines() or ["no output"])[-1][:300], "wall_s": wall}, None
    events = [json.loads(line) for line in runs[-1].read_text().splitlines() if line.strip()]
    step_events = [e for e in events if e.get("type") == "step"]
    times = [float(e["time"]) for e in step_events]
    rates = [float(e["audio_seconds_per_second"]) for e in step_events]
    if len(step_events) <= WARMUP:
        return {"error": f"only {len(step_events)} steps", "wall_s": wall}, runs[-1].parent
    audio = sum(r * (times[i] - times[i - 1]) for i, r in enumerate(rates) if i >= WARMUP)
    span = times[-1] - times[WARMUP - 1]
    return {"audio_seconds_per_second": audio / span, "steps_measured": len(step_events) - WARMUP,
            "step_ms": 1000 * span / (len(step_events) - WARMUP), "process_wall_s": wall}, runs[-1].parent


def corpus_batch(corpus: str, tokenizer, size: int = 32) -> dict:
    """The first `size` utterances of the corpus as one padded batch (texts kept to the model's vocabulary)."""
    from asr_poc.datasets.interface import collate_fn

    rows = list(csv.reader(open(Path(corpus) / "metadata.csv"), delimiter="|"))[:size]
    items = []
    for row in rows:
        audio, rate = sf.read(Path(corpus) / "wavs" / f"{row[0]}.wav", dtype="float32")
        text = "".join(c for c in row[-1] if c == " " or c in tokenizer.vocab)
        items.append({"waveform": torch.from_numpy(audio), "text": text, "id": row[0]})
    return collate_fn(items, tokenizer)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    sync()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - started) / repeats


def build(model: str, size: str, corpus: str, device: str):
    """A fresh model of this size, its vocabulary from the corpus texts, built from the config as `train` does."""
    from asr_poc.config import load_config, validate_config
    from asr_poc.models.spec import model_spec
    from asr_poc.plugins import get_model_class
    from asr_poc.text import CharTokenizer

    warmup = ["models.rnn-t.ctc_warmup_steps=0"] if model == "rnn-t" else []  # the transducer's step and search
    cfg = validate_config(load_config(None, [f"model={model}", f"models.{model}.size={size}",
                                             f"datasets.synthetic.path={corpus}", *warmup]))
    texts = [row[-1] for row in csv.reader(open(Path(corpus) / "metadata.csv"), delimiter="|")]
    spec = model_spec(cfg, CharTokenizer.from_texts(texts).vocab, spec_augment=True)
    return get_model_class(model)(spec).to(device)


def model_figures(corpus: str, out: Path, model: str, size: str, compiled: bool, deadline: float,
                  device: str = "cuda", baselines: dict | None = None) -> None:
    """A training step and batched greedy decoding on one fixed batch, fp32 and bf16 autocast, eager or compiled;
    ratios against eager fp32 of the same model (kept in `baselines`)."""
    baselines = {} if baselines is None else baselines
    for dtype in ("fp32", "bf16"):
        if time.time() > deadline:
            return
        torch.manual_seed(0)
        net = build(model, size, corpus, device)
        batch = corpus_batch(corpus, net.tokenizer)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        audio_s = float(batch["waveform_lengths"].sum()) / net.sample_rate
        one = {"waveforms": batch["waveforms"][:1, : int(batch["waveform_lengths"][0])],
               "lengths": batch["waveform_lengths"][:1]}
        one_s = float(one["lengths"][0]) / net.sample_rate
        record = {"part": "model", "model": model, "size": size, "compile": compiled, "dtype": dtype,
                  "parameters": sum(p.numel() for p in net.parameters()), "batch_audio_s": audio_s,
                  "batch1_audio_s": one_s}
        try:
            forward = torch.compile(net) if compiled else net
            ctx = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if dtype == "bf16" else torch.enable_grad
            net.train()

            def step():
                with ctx():
                    loss = forward(batch)
                loss.backward()

            t0 = time.perf_counter()
            record["train_audio_s_per_s"] = audio_s / timed(step)
            net.eval()
            decode = torch.compile(net.transcribe) if compiled else net.transcribe

            def run_batch():
                with torch.inference_mode(), ctx():
                    decode(batch["waveforms"], batch["waveform_lengths"])

            def run_one():
                with torch.inference_mode(), ctx():
                    decode(one["waveforms"], one["lengths"])

            record["rtfx_batch32"] = audio_s / timed(run_batch)
            record["rtfx_batch1"] = one_s / timed(run_one)
            record["seconds_including_compile"] = time.perf_counter() - t0
            key = (model, size)
            if not compiled and dtype == "fp32":
                baselines[key] = dict(record)
            for name in ("train_audio_s_per_s", "rtfx_batch32", "rtfx_batch1"):
                if baselines.get(key, {}).get(name):
                    record[name + "_vs_eager_fp32"] = record[name] / baselines[key][name]
        except Exception as err:  # a figure that fails is recorded, the others still run
            record["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
        log(out, record)
        del net
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def ddp_figures(corpus: str, root: str, out: Path, device: str) -> None:
    """DDP through torchrun on one GPU (NCCL): the two-step way and the natural command."""
    common = [f"datasets.synthetic.path={corpus}", "training.max_steps=30", "training.eval_utterances=0",
              "training.extra_eval=[]", f"training.device={device}", "training.batch_size=32"]
    r = tempfile.mkdtemp(dir=root)
    cmd = [sys.executable, "-m", "asr_poc", "train", "--create-only", "--dataset", "synthetic"]
    for s in [*common, f"checkpoint_dir={r}"]:
        cmd += ["--set", s]
    made = subprocess.run(cmd, capture_output=True, text=True)
    run_path = (made.stdout.strip().splitlines() or [""])[-1]
    child = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "asr_poc.training.worker",
                            run_path], capture_output=True, text=True, timeout=300)
    status = Path(run_path) / "status.json"
    state = json.loads(status.read_text()) if run_path and status.exists() else {}
    log(out, {"part": "ddp", "how": "two-step", "rc": child.returncode, "state": state.get("state"),
              "step": state.get("step"), "stderr_tail": (child.stderr + made.stderr).strip()[-300:]})
    r = tempfile.mkdtemp(dir=root)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "asr_poc"]
    figures, _ = train_run(corpus, r, "conformer", "xs", True, steps=30, launcher=launcher, device=device)
    log(out, {"part": "ddp", "how": "natural", "run_folders": len(glob.glob(f"{r}/*/events.jsonl")), **figures})


def pipeline_figures(corpus: str, out: Path, models: dict, deadline: float) -> None:
    """`asr-poc bench`'s training figures (the real trainer, and the model step alone on batches held on the GPU)
    for each model and size, with the augmentation in 8 workers and then on the GPU."""
    for model, sizes in models.items():
        for size in sizes:
            for where in ("workers", "batches"):
                if time.time() > deadline:
                    return
                sets = [f"datasets.synthetic.path={corpus}", "training.batch_size=32", "training.num_workers=8",
                        f"training.augment_in={where}", "datasets.synthetic.augment.ramp_utterances=0"]
                cmd = [sys.executable, "-m", "asr_poc", "bench", f"{model}:{size}", "--limit", "2", "--no-baseline",
                       "--no-streaming", "--batch-size", "1", "--threads", "1", "--train-steps", "30", "--no-write",
                       "--no-busy-core",
                       "--json", *[a for s in sets for a in ("--set", s)]]
                record = {"part": "pipeline", "model": model, "size": size, "augment_in": where}
                try:
                    child = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                    training = json.loads(child.stdout)["systems"][0]["training"]
                    record.update({k: training.get(k) for k in (
                        "audio_seconds_per_second", "model_step_audio_seconds_per_second", "share_of_model_step",
                        "step_ms_p50", "device", "reason")})
                except Exception as err:  # a figure that fails is recorded, the others still run
                    record["error"] = f"{type(err).__name__}: {str(err)[:300]}"
                log(out, record)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget-s", type=float, default=420)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    parser.add_argument("--models", default="conformer:xs,s,m;rnn-t:xs,s,m")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps per trainer run")
    parser.add_argument("--parts", default="pipeline,trainer,ddp,model,fp32",
                        help="which parts to run, in this order")
    args = parser.parse_args()
    models = {m.split(":")[0]: m.split(":")[1].split(",") for m in args.models.split(";")}
    deadline = time.time() + args.budget_s
    out = Path(args.out)
    corpus = str(Path(args.corpus).resolve())
    cuda = torch.cuda.is_available()
    log(out, {"part": "machine", "gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__,
              "cuda": torch.version.cuda, "cpu_count": os.cpu_count()})
    root = tempfile.mkdtemp(prefix="gpu-bench-")
    parts = args.parts.split(",")
    if "pipeline" in parts:  # part 4 first: the figure issue 22 asks for
        pipeline_figures(corpus, out, {m: s[:2] for m, s in models.items() if m == "conformer"}, deadline - 60)
    if "trainer" in parts:  # part 1: the real trainer, mixed precision
        for model, sizes in models.items():
            for size in sizes:
                figures, _ = train_run(corpus, tempfile.mkdtemp(dir=root), model, size, True, args.steps,
                                       device=args.device)
                log(out, {"part": "trainer", "model": model, "size": size, "mixed_precision": True, **figures})
    if "ddp" in parts:  # part 3
        ddp_figures(corpus, root, out, args.device)
    if "model" in parts:  # part 2: the model alone, eager for every size first, then compiled
        baselines: dict = {}
        for compiled in (False, True) if not args.no_compile else (False,):
            for model, sizes in models.items():
                for size in sizes:
                    model_figures(corpus, out, model, size, compiled, deadline - 20, args.device, baselines)
    if "fp32" in parts:  # part 1 again: fp32, while time is left
        for model, sizes in models.items():
            for size in sizes:
                if time.time() > deadline:
                    return 0
                figures, _ = train_run(corpus, tempfile.mkdtemp(dir=root), model, size, False, args.steps,
                                       device=args.device)
                log(out, {"part": "trainer", "model": model, "size": size, "mixed_precision": False, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
