"""An English language model for real speech (issue 11): greedy vs beam search without an LM vs beam search with
the synthetic corpus's LM vs beam search with the English LM (`asr-poc lm build --source english`), on the real
clips (data/real-check) and the synthetic test split, same checkpoint, one run, one thread, batch 1.

The English LM's weight and word score are chosen on the synthetic *dev* split (the lowest CER; within 0.005 of it,
the lightest LM weight, then the lowest word score); every setting's figures on real speech and on the synthetic
test split are reported, chosen or not. RTFx is wall-clock and thread-CPU (`rtfx_thread_cpu`, robust to load).

    .venv/bin/python benchmarks/real_speech_lm.py CHECKPOINT [--english data/lm/english] [--synthetic-lm data/lm/synthetic]
        [--test-limit 300] [--dev-limit 100] [--weights 0.25,0.5,1,2] [--word-scores 0,1,2]
        [--out benchmarks/results/real-speech-lm-2core.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from asr_poc.bench import machine
from asr_poc.bench.corpus import load_corpus
from asr_poc.bench.decoding import compare_decoding, markdown
from asr_poc.config import load_config
from asr_poc.decoding.lm import LMFiles, build_english_lm, build_lm, dataset_texts
from asr_poc.io import atomic_write_json
from asr_poc.models.interface import BaseASRModel

WEIGHTS = (0.25, 0.5, 1.0, 2.0)
WORD_SCORES = (0.0, 1.0, 2.0)
TIE_CER = 0.005


def ensure_lms(english: str, synthetic: str, cfg: dict) -> dict:
    """Build the English LM and the synthetic corpus's LM when their folders are missing; return the build times."""
    built = {}
    if not (Path(english) / "words.arpa").is_file():
        start = time.perf_counter()
        manifest = build_english_lm(english)
        built["english"] = {"seconds": round(time.perf_counter() - start, 1), **manifest}
    if not (Path(synthetic) / "words.arpa").is_file():
        start = time.perf_counter()
        manifest = build_lm(dataset_texts(cfg, "synthetic", "train"), synthetic, order=3,
                            source={"dataset": "synthetic", "split": "train"})
        built["synthetic"] = {"seconds": round(time.perf_counter() - start, 1), **manifest}
    for folder in (english, synthetic):
        LMFiles.open(folder)
    return built


def english_grid(english: str, weights=WEIGHTS, word_scores=WORD_SCORES) -> list[dict]:
    return [{"method": "beam", "lm_path": english, "lexicon": True, "lm_weight": w, "word_score": s}
            for w in weights for s in word_scores]


def baselines(synthetic: str) -> list[dict]:
    return [{"method": "greedy"},
            {"method": "beam", "lm_path": None, "lexicon": False, "lm_weight": 0.0},
            {"method": "beam", "lm_path": synthetic, "lexicon": True, "lm_weight": 0.5}]


def choose(dev: dict) -> dict:
    """The English setting chosen on dev: the lowest CER, ties (within TIE_CER) to the lighter LM weight."""
    rows = [r for r in dev["methods"] if r["decoding"]["method"] == "beam" and r["decoding"]["lm_path"]
            and r["decoding"]["lexicon"] and "english" in str(r["decoding"]["lm_path"])]
    best = min(r["cer"] for r in rows)
    near = [r for r in rows if r["cer"] <= best + TIE_CER]
    pick = min(near, key=lambda r: (r["decoding"]["lm_weight"], r["decoding"]["word_score"], r["cer"]))
    return {k: pick["decoding"][k] for k in ("lm_weight", "word_score")} | {"dev_cer": pick["cer"],
                                                                          "dev_wer": pick["wer"]}


def run(model, corpus, methods: list[dict], label: str) -> dict:
    print(f"== {label}: {len(corpus)} files, {corpus.audio_seconds:.0f} s; {len(methods)} decodings", flush=True)
    result = compare_decoding(model, methods, corpus.at_rate(model.sample_rate), corpus.texts, model.sample_rate)
    print(markdown(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--english", default="data/lm/english")
    parser.add_argument("--synthetic-lm", default="data/lm/synthetic")
    parser.add_argument("--dev-limit", type=int, default=100)
    parser.add_argument("--test-limit", type=int, default=300)
    parser.add_argument("--weights", default=",".join(map(str, WEIGHTS)), help="LM weights of the grid")
    parser.add_argument("--word-scores", default=",".join(map(str, WORD_SCORES)), help="word scores of the grid")
    parser.add_argument("--out", default="benchmarks/results/real-speech-lm-2core.json")
    args = parser.parse_args()
    weights = tuple(float(w) for w in args.weights.split(","))
    word_scores = tuple(float(w) for w in args.word_scores.split(","))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_start = os.getloadavg()
    cfg = load_config(None, ["dataset=synthetic"])
    built = ensure_lms(args.english, args.synthetic_lm, cfg)
    model = BaseASRModel.from_checkpoint(args.checkpoint, device="cpu")

    dev = load_corpus(cfg, "dev", args.dev_limit, progress=False)
    dev_result = run(model, dev, [{"method": "greedy"}, *english_grid(args.english, weights, word_scores)],
                     "synthetic dev (choosing)")
    chosen = choose(dev_result)
    print(f"chosen on dev: {chosen}", flush=True)

    methods = [*baselines(args.synthetic_lm), *english_grid(args.english, weights, word_scores),
               {"method": "beam", "lm_path": args.english, "lexicon": False, "lm_weight": chosen["lm_weight"],
                "word_score": chosen["word_score"]}]
    real = load_corpus(load_config(None, ["dataset=real-check"]), "test", None, progress=False)
    real_result = run(model, real, methods, "real-check")
    test = load_corpus(cfg, "test", args.test_limit, progress=False)
    test_result = run(model, test, methods, "synthetic test")

    result = {"created": started, "checkpoint": str(args.checkpoint), "machine": machine.describe(),
              "load_average": {"start": load_start, "end": os.getloadavg()}, "built": built,
              "english_lm": json.loads((Path(args.english) / "lm.json").read_text()),
              "chosen_on_dev": chosen, "grid": {"lm_weight": weights, "word_score": word_scores},
              "dev": dev_result, "real_check": real_result, "synthetic_test": test_result}
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
