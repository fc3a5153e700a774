"""Accuracy (WER/CER with jiwer) and speed (real-time factor) of a model on a data set."""
from __future__ import annotations

import time
from typing import Optional

import jiwer
import torch
from torch.utils.data import DataLoader, Subset

from .datasets.interface import BaseASRDataset, DurationBucketSampler, collate_fn


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Corpus-level word and character error rates. Empty references are skipped (jiwer refuses them)."""
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        raise ValueError("no non-empty reference transcripts to score against")
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps))}


def real_time_factor(processing_seconds: float, audio_seconds: float) -> float:
    """Processing time divided by audio duration: below 1 is faster than real time. RTFx is its inverse."""
    return processing_seconds / audio_seconds if audio_seconds > 0 else float("nan")


@torch.no_grad()
def evaluate(model, dataset: BaseASRDataset, limit: Optional[int] = None, batch_size: int = 8,
             progress: bool = False) -> dict:
    """Decode (the first `limit` utterances of) `dataset`; return WER, CER, RTF and the transcripts.

    RTF counts model time only (features, encoder, decoding), not reading files.
    """
    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
        durations = [dataset.dataset.items[i].duration for i in dataset.indices]
    else:
        durations = dataset.durations()
    sampler = DurationBucketSampler(durations, batch_size, shuffle=False)
    # its own generator: iterating a DataLoader draws a base seed from the global RNG otherwise, and scoring in
    # the middle of a run must not change what training draws next (exact resume)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, generator=torch.Generator())
    was_training = model.training
    model.eval()
    refs, hyps, ids = [], [], []
    compute = audio = 0.0
    try:
        for batch in _maybe_progress(loader, progress):
            wav = batch["waveforms"].to(model.device)
            lengths = batch["waveform_lengths"].to(model.device)
            start = time.perf_counter()
            out = model.transcribe(wav, lengths)
            compute += time.perf_counter() - start
            audio += float(batch["waveform_lengths"].sum()) / model.sample_rate
            refs += batch["texts"]
            hyps += out
            ids += batch["ids"]
    finally:
        model.train(was_training)
    rates = error_rates(refs, hyps)
    return {**rates, "rtf": real_time_factor(compute, audio), "audio_seconds": audio, "compute_seconds": compute,
            "utterances": len(refs), "ids": ids, "references": refs, "hypotheses": hyps}


def _maybe_progress(iterable, progress: bool):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc="evaluating", unit="batch")
