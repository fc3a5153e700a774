"""CPU time of one training step (this thread's CPU time, so the load of other processes barely moves it), one torch
thread, one batch of 16 training utterances without augmentation: the conformer-CTC against the transducer's
encoders and joiner sizes. Prints one JSON line a variant.

    .venv/bin/python benchmarks/transducer_step_cost.py [--corpus data/synthetic] [--only "rnn-t conformer" ...]
"""
from __future__ import annotations

import argparse
import json
import os
import time

JOINT = {"ctc_warmup_steps": 0, "ctc_head_input": "projection", "joiner_stride": 1}  # the defaults before session 6
VARIANTS = [("conformer-ctc", "conformer", {}),
            ("rnn-t emformer", "rnn-t", {**JOINT, "encoder": "emformer"}),
            ("rnn-t conformer", "rnn-t", {**JOINT, "encoder": "conformer", "lookahead_ms": 0}),
            ("rnn-t conformer, joiner 144", "rnn-t",
             {**JOINT, "encoder": "conformer", "lookahead_ms": 0, "joiner_dim": 144}),
            ("rnn-t conformer, joiner 96, predictor 96", "rnn-t",
             {**JOINT, "encoder": "conformer", "lookahead_ms": 0, "joiner_dim": 96, "predictor_dim": 96}),
            ("rnn-t conformer, a CTC warm-up step", "rnn-t",  # ctc_warmup_steps: encoder + CTC head only
             {**JOINT, "encoder": "conformer", "lookahead_ms": 0, "ctc_warmup_steps": 10**6}),
            ("rnn-t conformer, CTC head on the encoder", "rnn-t",  # configs/rnnt-10min.yaml's joint step
             {**JOINT, "encoder": "conformer", "lookahead_ms": 0, "ctc_head_input": "encoder"}),
            ("rnn-t conformer, CTC head on the encoder, joiner_stride 2", "rnn-t",  # 80-ms joiner frames
             {**JOINT, "encoder": "conformer", "lookahead_ms": 0, "ctc_head_input": "encoder", "joiner_stride": 2})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/synthetic")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--only", action="append", default=[],
                        help="measure only the variants whose name contains this (repeatable)")
    args = parser.parse_args()
    import torch

    from asr_poc.config import dataset_section, load_config
    from asr_poc.datasets.interface import collate_fn
    from asr_poc.plugins import get_model_class, load_dataset
    from asr_poc.text import CharTokenizer

    torch.set_num_threads(1)
    cfg = load_config(None, [f"datasets.synthetic.path={args.corpus}", "datasets.synthetic.augment=null"])
    ds = load_dataset("synthetic", dataset_section(cfg), "train")
    tokenizer = CharTokenizer.from_texts(ds.texts())
    batch = collate_fn([ds[i] for i in range(16)], tokenizer)
    audio = float(batch["waveform_lengths"].sum()) / ds.sample_rate
    features = {"features": cfg["features"]} if cfg.get("features") else {}
    for name, model_name, extra in VARIANTS:
        if args.only and not any(part in name for part in args.only):
            continue
        torch.manual_seed(0)
        model = get_model_class(model_name)({**cfg["models"][model_name], **extra, "vocab": tokenizer.vocab,
                                             "spec_augment": True, **features}).train()
        optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
        times = []
        for _ in range(args.steps):
            started = time.thread_time()
            optimizer.zero_grad()
            model(batch).backward()
            optimizer.step()
            times.append(time.thread_time() - started)
        measured = sorted(times[1:] or times)  # after the first step (its allocations), unless there is one
        cpu = measured[len(measured) // 2]
        print(json.dumps({"variant": name, "parameters": model.num_parameters(), "cpu_seconds_per_step": round(cpu, 3),
                          "audio_seconds": audio, "load_average": [round(x, 2) for x in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
