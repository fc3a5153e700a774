"""Scoring and transcribing with a checkpoint, as `asr-poc eval` and `asr-poc transcribe` do: WER, CER and the
real-time factor of a checkpoint on a data set's split (with the config's decoding, and the per-utterance details
when asked), and a line per audio file.

The work is `asr_poc.evaluation`, `asr_poc.inference` and `asr_poc.decoding`; they import torch, so they are
imported inside the calls (and `Transcript` / `Failure` on first use): importing this module stays light.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

from ..config import dataset_section, load_config
from ..plugins import load_dataset
from ..runs import Run
from .analysis import write_evaluation_details

if TYPE_CHECKING:
    from ..inference import Failure, Transcript

__all__ = ["Failure", "Transcript", "checkpoint_file", "evaluate_checkpoint", "real_time_factor", "resolve_device",
           "transcribe_files"]


def __getattr__(name: str):
    """`Transcript` and `Failure` (what `transcribe_files` yields), imported with torch on first use."""
    if name in ("Transcript", "Failure"):
        from .. import inference

        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_device(name: str) -> str:
    """`auto` -> `cuda` when a GPU is there, else `cpu`; any other name as given (a missing GPU is one line)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is available (use auto or cpu)")
    return name


def checkpoint_file(spec: str | os.PathLike, root: Optional[str | os.PathLike] = None) -> Path:
    """A checkpoint file: `spec` itself, or a run's (folder or id) best.pt, else its last.pt."""
    if Path(spec).is_file():
        return Path(spec)
    if Path(spec).suffix == ".pt":
        raise FileNotFoundError(f"checkpoint {spec} not found")
    run = Run.open(spec, root=root)
    for candidate in (run.best_checkpoint, run.last_checkpoint):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"run {run.id} has no best.pt or last.pt yet")


def evaluate_checkpoint(checkpoint: str | os.PathLike, dataset: str = "synthetic", split: str = "test",
                        config_path: Optional[str] = None, overrides: Iterable[str] = (), limit: Optional[int] = None,
                        batch_size: int = 8, device: str = "auto", details: bool = False,
                        progress: bool = False) -> dict:
    """Score a checkpoint (a file, or a run: see `checkpoint_file`) on `dataset`/`split`, decoding as the config's
    `decoding` section says. Returns {checkpoint, dataset, split, utterances, wer, cer, rtf, rtfx, audio_seconds,
    decoding, decoding_options}, and `details` (the file written) when `details` is True."""
    from ..decoding.beam import decoded_model
    from ..evaluation import evaluate
    from ..models.interface import BaseASRModel

    checkpoint = checkpoint_file(checkpoint)
    model = BaseASRModel.from_checkpoint(checkpoint, device=resolve_device(device))
    cfg = load_config(config_path, [f"dataset={dataset}", *overrides])
    data = load_dataset(dataset, {**dataset_section(cfg), "sample_rate": model.sample_rate}, split)
    decoded, decoding = decoded_model(model, cfg.get("decoding"))
    result = evaluate(decoded, data, limit=limit, batch_size=batch_size, progress=progress)
    summary = {"checkpoint": str(checkpoint), "dataset": dataset, "split": split,
               "utterances": result["utterances"], "wer": result["wer"], "cer": result["cer"], "rtf": result["rtf"],
               "rtfx": 1 / result["rtf"] if result["rtf"] else None, "audio_seconds": result["audio_seconds"],
               "decoding": decoding.label(), "decoding_options": decoding.to_dict()}
    if details:
        summary["details"] = str(write_evaluation_details(
            checkpoint, summary, result["ids"], result["references"], result["hypotheses"],
            items=getattr(data, "items", [])))
    return summary


def transcribe_files(checkpoint: str | os.PathLike, files: Iterable[str | os.PathLike], device: str = "auto"
                     ) -> Iterator["Transcript | Failure"]:
    """Load `checkpoint` (a `.pt`, or an exported `.onnx`) once, then yield each file's `Transcript` as soon as it is
    done, or a `Failure` (one line: why) for a file that cannot be read; the other files still run."""
    from ..inference import Transcriber

    transcriber = Transcriber.from_checkpoint(checkpoint, device=resolve_device(device))
    for path in files:
        yield transcriber.transcribe_files([path])[0]


def real_time_factor(compute_seconds: float, audio_seconds: float) -> float:
    """Processing time divided by audio duration: below 1 is faster than real time (RTFx is its inverse)."""
    from ..evaluation import real_time_factor as rtf

    return rtf(compute_seconds, audio_seconds)
