"""Issue 22: batched greedy transducer search against the one-utterance loop and against greedy CTC, on the CPU.

    .venv/bin/python benchmarks/transducer_greedy.py [--utterances 24] [--threads 1]

Systems, untrained weights of the default presets (`conformer` xs and `rnn-t` xs: conformer encoder, joiner_stride
2), the transducer past its CTC warm-up: its joiner's blank bias is set so that it emits as many tokens as the
references have characters (a trained model's rate; an untrained one emits 4 symbols every frame). Each system
transcribes the same test utterances at batch 1 and in batches of 16 (sorted by length); time is the decoding
thread's CPU time (what one core does, whatever else runs), median of 3 rounds, interleaved, with the load average.
`search` rows time the search alone on the encoder's output (CTC: argmax and collapse).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from asr_poc.config import load_config
from asr_poc.models.rnnt import MAX_SYMBOLS_PER_FRAME
from asr_poc.models.rnnt_greedy import greedy_batch
from asr_poc.models.spec import model_spec
from asr_poc.plugins import get_model_class, load_dataset
from asr_poc.text import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def corpus(n: int) -> tuple[list[torch.Tensor], list[str]]:
    test = load_dataset("synthetic", {"path": str(ROOT / "data" / "synthetic"), "sample_rate": 16000}, "test")
    items = [test[i] for i in range(min(n, len(test)))]
    return [torch.as_tensor(it["waveform"]) for it in items], [it["text"] for it in items]


def build(name: str, vocab: dict):
    cfg = load_config(None, [f"model={name}"])
    torch.manual_seed(0)
    return get_model_class(name)(model_spec(cfg, vocab)).eval()


def batches(waves: list[torch.Tensor], size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    order = sorted(range(len(waves)), key=lambda i: len(waves[i])) if size > 1 else list(range(len(waves)))
    out = []
    for s in range(0, len(order), size):
        idx = order[s : s + size]
        lengths = torch.tensor([len(waves[i]) for i in idx])
        wav = torch.zeros(len(idx), int(lengths.max()))
        for row, i in enumerate(idx):
            wav[row, : len(waves[i])] = waves[i]
        out.append((wav, lengths))
    return out


def loop_transcribe(model, wav: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """The transducer's search before batching: one utterance at a time (`EmformerRNNT.greedy`)."""
    enc, n = model.encode(wav, lengths)
    return [model.tokenizer.decode(model.greedy(enc[i, : int(k)]).tokens) for i, k in enumerate(n)]


def calibrate(model, data: list[tuple[torch.Tensor, torch.Tensor]], chars: int) -> float:
    """Set the joiner's blank bias (bisection) so the model emits about `chars` tokens on `data`."""
    bias = model.model.joiner.linear.bias
    base, low, high = float(bias[model.blank]), -20.0, 20.0
    for _ in range(14):
        mid = (low + high) / 2
        bias.data[model.blank] = base + mid
        emitted = sum(len(t.replace(" ", "")) for w, n in data for t in model.transcribe(w, n))
        low, high = (mid, high) if emitted > chars else (low, mid)
    return mid


def cpu_seconds(fn, data) -> float:
    start = time.thread_time()
    for wav, lengths in data:
        fn(wav, lengths)
    return time.thread_time() - start


def measure(ctc, rnnt, data: list, audio: float, rounds: int) -> dict[str, tuple[float, float]]:
    """Per system: RTFx of `transcribe` and of the search alone on `data`, thread CPU time, median of `rounds`."""
    systems = {"ctc": ctc.transcribe, "rnnt batched": rnnt.transcribe,
               "rnnt loop": lambda w, n: loop_transcribe(rnnt, w, n)}
    assert systems["rnnt batched"](*data[0]) == systems["rnnt loop"](*data[0])
    encoded = [(ctc.encode(w, n), rnnt.encode(w, n)) for w, n in data]
    searches = {"ctc": lambda c, r: ctc.tokenizer.decode_ctc_batch(*c),
                "rnnt batched": lambda c, r: greedy_batch(rnnt.model, *r, rnnt.blank, MAX_SYMBOLS_PER_FRAME),
                "rnnt loop": lambda c, r: [rnnt.greedy(e[: int(k)]) for e, k in zip(*r)]}
    whole, search = {name: [] for name in systems}, {name: [] for name in systems}
    for _ in range(rounds):
        for name, fn in systems.items():
            whole[name].append(cpu_seconds(fn, data))
            search[name].append(cpu_seconds(searches[name], encoded))
    return {name: (audio / statistics.median(whole[name]), audio / statistics.median(search[name]))
            for name in systems}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    waves, texts = corpus(args.utterances)
    vocab = CharTokenizer.from_texts(texts).vocab
    ctc, rnnt = build("conformer", vocab), build("rnn-t", vocab)
    rnnt.transducer_trained.fill_(True)  # past the warm-up: transcribe runs the transducer search
    audio = sum(len(w) for w in waves) / 16000
    load = os.getloadavg()
    with torch.inference_mode():
        shift = calibrate(rnnt, batches(waves, 16), sum(len(t.replace(" ", "")) for t in texts))
        results = {size: measure(ctc, rnnt, batches(waves, size), audio, args.rounds) for size in (1, 16)}
    print(json.dumps({"utterances": len(waves), "audio_s": round(audio, 1), "threads": args.threads,
                      "blank_bias_shift": round(shift, 2), "load_average": [load, os.getloadavg()]}))
    print("| batch | system | RTFx (thread CPU) | vs CTC | search alone, RTFx | search vs CTC's |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size, rows in results.items():
        ctc_whole, ctc_search = rows["ctc"]
        for name, (whole, search) in rows.items():
            print(f"| {size} | {name} | {whole:.1f} | {whole / ctc_whole:.2f}x | {search:.1f} | "
                  f"{search / ctc_search:.4f}x |")


if __name__ == "__main__":
    main()
