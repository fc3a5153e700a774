"""Cost of the real-corpus loaders: scanning a LibriSpeech / Common Voice folder into lhotse cuts (first start), a
start from the cached cuts, and reading items (CPU seconds per audio second on one thread: FLAC at 16 kHz, MP3 at
48 kHz resampled to 16 kHz). The corpora are espeak-ng sentences of about LibriSpeech's mean length (12 s) written
in each layout under OUT.

    .venv/bin/python benchmarks/corpora.py OUT [--utterances 100] [--num-jobs 1 4]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

WORDS = ("the quick brown fox jumps over a lazy dog while seven grey ships sail past the old harbour wall and "
         "nobody on the pier says a single word about the weather").split()


def sentence(n: int) -> str:
    """A ~35-word sentence (about 12 s of espeak-ng at its default speed), different for each n."""
    return " ".join(WORDS[(n * 7 + i * (n % 5 + 1)) % len(WORDS)] for i in range(35))


def make_corpora(out: Path, count: int) -> tuple[Path, Path]:
    """LibriSpeech/train-clean-100/... (FLAC 16 kHz) and cv/en/clips + train.tsv (MP3 48 kHz) of `count` sentences."""
    libri, cv = out / "LibriSpeech" / "train-clean-100" / "19" / "198", out / "cv" / "en"
    if libri.is_dir() and (cv / "train.tsv").is_file():
        return out / "LibriSpeech", cv
    libri.mkdir(parents=True)
    (cv / "clips").mkdir(parents=True)

    def one(n: int) -> None:
        wav = out / f"{n}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), sentence(n)], check=True)
        for target, rate in ((libri / f"19-198-{n:04d}.flac", 16000), (cv / "clips" / f"cv_{n}.mp3", 48000)):
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-ar", str(rate), str(target)],
                           check=True)
        wav.unlink()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(count)))
    (libri / "19-198.trans.txt").write_text("".join(f"19-198-{n:04d} {sentence(n).upper()}\n" for n in range(count)))
    (cv / "train.tsv").write_text("client_id\tpath\tsentence\n" + "".join(f"s\tcv_{n}.mp3\t{sentence(n)}\n"
                                                                      for n in range(count)))
    return out / "LibriSpeech", cv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--num-jobs", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    import lhotse  # noqa: F401  (imported once here, ~1.3 s, so that the first scan is not charged for it)

    from asr_poc.plugins import load_dataset

    libri, cv = make_corpora(args.out, args.utterances)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.utterances} utterances")
    for name, path, split_names in (("librispeech", libri, {"train": "train-clean-100"}),
                                    ("commonvoice", cv, {"train": "train"})):
        for jobs in args.num_jobs:
            manifests = args.out / f"manifests-{name}-{jobs}"
            shutil.rmtree(manifests, ignore_errors=True)
            cfg = {"path": str(path), "manifest_dir": str(manifests), "num_jobs": jobs, "split_names": split_names}
            start = time.perf_counter()
            ds = load_dataset(name, cfg, "train")
            scan = time.perf_counter() - start
            start = time.perf_counter()
            load_dataset(name, cfg, "train")
            cached = time.perf_counter() - start
            print(f"{name} num_jobs={jobs}: scan {1000 * scan / len(ds):.1f} ms an utterance, "
                  f"cached start {1000 * cached / len(ds):.2f} ms an utterance")
        audio, cpu = 0.0, time.thread_time()
        for i in range(len(ds)):
            audio += ds[i]["waveform"].numel() / 16000
        cpu = time.thread_time() - cpu
        print(f"{name} read: {audio / len(ds):.1f} s an utterance, {audio / cpu:.0f} audio s per CPU s "
              f"({1000 * cpu / len(ds):.1f} ms an item)")


if __name__ == "__main__":
    main()
