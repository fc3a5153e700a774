"""LM weight for beam search, chosen on the dev split (not test): WER/CER of greedy and of beam search with the
lexicon + word LM and lexicon-free + character LM at several `decoding.lm_weight` values, same files, one run.

    .venv/bin/python benchmarks/lm_weight.py CHECKPOINT LM_FOLDER [--dataset synthetic] [--limit 40]
"""
from __future__ import annotations

import argparse
import json

from asr_poc.bench.corpus import load_corpus
from asr_poc.bench.decoding import compare_decoding, markdown
from asr_poc.config import load_config
from asr_poc.models.interface import BaseASRModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("lm")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--weights", default="0.25,0.5,1,2")
    args = parser.parse_args()
    model = BaseASRModel.from_checkpoint(args.checkpoint)
    corpus = load_corpus(load_config(None, [f"dataset={args.dataset}"]), args.split, args.limit, progress=False)
    methods = [{"method": "greedy"}]
    for weight in (float(w) for w in args.weights.split(",")):
        methods += [{"method": "beam", "lm_path": args.lm, "lexicon": lexicon, "lm_weight": weight}
                    for lexicon in (True, False)]
    result = compare_decoding(model, methods, corpus.at_rate(model.sample_rate), corpus.texts, model.sample_rate)
    print(markdown(result))
    print(json.dumps([{k: r[k] for k in ("method", "wer", "cer", "rtfx")} for r in result["methods"]]))


if __name__ == "__main__":
    main()
