"""Which decoding helps people's speech: greedy vs beam search with the English word LM (lexicon or lexicon-free),
its weight and word bonus tuned on one half of real-check and reported on the other half.

    .venv/bin/python benchmarks/decoding_sweep.py checkpoints/RUN/best.pt [--lm data/lm/english] [--out FILE.json]

The halves: real-check's clips sorted by id within each group (speaker or collection), alternately dev and test, so
both halves hear every group. The CTC log-probabilities of each clip are computed once and every decoder reads
them; the choice is made on the dev half only, and the test half's figures are the ones to quote.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

from asr_poc.config import DecodingOptions, dataset_section, load_config
from asr_poc.datasets.real_check import shipped_clips
from asr_poc.decoding.beam import BeamSearchDecoder
from asr_poc.decoding.emissions import ctc_log_probs
from asr_poc.evaluation import error_rates
from asr_poc.models.interface import BaseASRModel
from asr_poc.plugins import load_dataset

GRID = {"lexicon": [True, False], "lm_weight": [0.25, 0.5, 1.0, 2.0, 3.0], "word_score": [-3.0, -2.0, -1.0, 0.0, 1.0]}


def halves(dataset) -> tuple[list[int], list[int]]:
    """Indices of the dev and test halves: alternate clips of each group."""
    group_of = {clip["id"]: clip["group"] for clip in shipped_clips()}
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(dataset.items):
        groups.setdefault(group_of.get(item.id, ""), []).append(i)
    dev, test = [], []
    for members in groups.values():
        ordered = sorted(members, key=lambda i: dataset.items[i].id)
        dev += ordered[0::2]
        test += ordered[1::2]
    return sorted(dev), sorted(test)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--lm", default="data/lm/english")
    parser.add_argument("--beam-size", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/decoding-sweep.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = BaseASRModel.from_checkpoint(args.checkpoint)
    data = load_dataset("real-check", dataset_section(load_config(None, ["dataset=real-check"])), "test")
    dev, test = halves(data)
    emissions, texts = [], []
    for i in range(len(data)):
        item = data[i]
        wav = item["waveform"][None]
        emissions.append(ctc_log_probs(model, wav, torch.tensor([wav.shape[1]])))
        texts.append(item["text"])

    def score(decode, indices: list[int]) -> dict:
        hyps = [decode(*emissions[i]) for i in indices]
        return error_rates([texts[i] for i in indices], hyps)

    greedy = lambda lp, n: model.tokenizer.decode_ctc(lp[0, : int(n[0])].argmax(-1).tolist())  # noqa: E731
    rows = [{"decoding": "greedy", "dev": score(greedy, dev), "test": score(greedy, test)}]
    print(f"greedy: dev WER {rows[0]['dev']['wer']:.3f}, test WER {rows[0]['test']['wer']:.3f}", file=sys.stderr)
    for lexicon, weight, bonus in itertools.product(*GRID.values()):
        options = DecodingOptions(method="beam", beam_size=args.beam_size, lm_path=args.lm, lexicon=lexicon,
                                  lm_weight=weight, word_score=bonus)
        start = time.perf_counter()
        decoder = BeamSearchDecoder(model.tokenizer, options)
        decode = lambda lp, n, d=decoder: d.decode(lp, n)[0]  # noqa: E731
        row = {"decoding": options.describe(), "options": options.to_dict(), "dev": score(decode, dev),
               "test": score(decode, test), "seconds": time.perf_counter() - start}
        rows.append(row)
        print(f"{row['decoding']}: dev WER {row['dev']['wer']:.3f}, test WER {row['test']['wer']:.3f}",
              file=sys.stderr)
    best = min(rows[1:], key=lambda r: (r["dev"]["wer"], r["dev"]["cer"]))
    result = {"checkpoint": args.checkpoint, "lm": args.lm, "dev_clips": len(dev), "test_clips": len(test),
              "greedy": rows[0], "best_on_dev": best, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({"greedy_test": rows[0]["test"], "best_on_dev": best["decoding"], "its_test": best["test"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
