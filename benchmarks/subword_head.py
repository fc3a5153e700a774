"""A sub-word (sentencepiece BPE) CTC head vs the character head on whisper-ctc, on real speech (issue 21, item 2).

Trains whisper-ctc with `configs/real-speech.yaml` on the synthetic corpus with `training.subword_vocab_size=N` for a
fixed number of steps (or takes such a run that exists: `--run`), then scores its best.pt and the character head's
checkpoint (`--char`, a run of the same config and about the same steps) on data/real-check with `asr-poc eval`,
greedy decoding, in the same call (same machine, same load). Beam search with the character/word LMs refuses a
sub-word head (`asr_poc.decoding.beam`), so greedy is the only decoding compared here.

    .venv/bin/python benchmarks/subword_head.py --char /tmp/exp/runs/RUN/best.pt [--run RUN_FOLDER | --root /tmp/exp/subword]
        [--vocab-size 256] [--steps 300] [--out benchmarks/results/subword-head-whisper-ctc-2core.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from asr_poc.bench import machine
from asr_poc.io import atomic_write_json

CLI = [str(Path(sys.executable).parent / "asr-poc")]  # the venv's entry point


def train(root: str, vocab_size: int, steps: int) -> Path:
    """One run of whisper-ctc with a BPE head for exactly `steps` steps (no time limit); returns its folder."""
    before = set(Path(root).glob("*-whisper-ctc-*")) if Path(root).is_dir() else set()
    subprocess.run([*CLI, "train", "--config", "configs/real-speech.yaml", "--dataset", "synthetic",
                    "--set", f"training.subword_vocab_size={vocab_size}", "--set", f"training.max_steps={steps}",
                    "--set", "training.max_minutes=null", "--root", root], check=True)
    (run,) = set(Path(root).glob("*-whisper-ctc-*")) - before
    return run


def evaluate(checkpoint: Path, dataset: str) -> dict:
    start = time.perf_counter()
    out = subprocess.run([*CLI, "eval", str(checkpoint), "--dataset", dataset, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return {**json.loads(out), "eval_seconds": round(time.perf_counter() - start, 1)}


def describe_run(checkpoint: Path) -> dict:
    """Steps, minutes and head of the run a checkpoint belongs to (its status.json and the checkpoint's vocab)."""
    import torch

    from asr_poc.text import make_tokenizer

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    tokenizer = make_tokenizer(state["config"]["vocab"])
    status = json.loads((checkpoint.parent / "status.json").read_text())
    return {"checkpoint": str(checkpoint), "checkpoint_step": state.get("step"), "run_steps": status.get("step"),
            "run_minutes": round((status["updated"] - status["started"]) / 60, 1),
            "head": type(tokenizer).__name__, "head_size": len(tokenizer),
            "dev_best_cer": status.get("best_cer"), "dev_best_wer": status.get("best_wer"),
            "tokens_per_word": tokens_per_word(tokenizer)}


def tokens_per_word(tokenizer) -> float:
    """How many ids the tokenizer spends on a word of the real-check references (the CTC target's length)."""
    path = Path("data/real-check/metadata.csv")
    if not path.is_file():
        return float("nan")
    refs = [line.rstrip("\n").split("|")[-1] for line in path.read_text(encoding="utf-8").splitlines() if line]
    words = sum(len(r.split()) for r in refs)
    return round(sum(len(tokenizer.encode(r)) for r in refs) / max(words, 1), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--char", required=True, type=Path, help="the character head's checkpoint (best.pt)")
    parser.add_argument("--run", type=Path, help="a BPE run that exists (else one is trained under --root)")
    parser.add_argument("--root", default="/tmp/exp/subword")
    parser.add_argument("--vocab-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dataset", default="real-check")
    parser.add_argument("--out", default="benchmarks/results/subword-head-whisper-ctc-2core.json")
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run = args.run or train(args.root, args.vocab_size, args.steps)
    bpe_checkpoint = run / "best.pt"
    result = {"created": started, "dataset": args.dataset, "decoding": "greedy", "machine": machine.describe(),
              "heads": {}}
    for name, checkpoint in (("char", args.char), ("bpe", bpe_checkpoint)):
        result["heads"][name] = {**describe_run(checkpoint), "eval": evaluate(checkpoint, args.dataset),
                                 "load_average": machine.load_average()}
        print(name, json.dumps(result["heads"][name]), flush=True)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
