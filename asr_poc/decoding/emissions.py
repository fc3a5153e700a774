"""CTC log-probabilities of any CTC model: what beam search and the ONNX export need beyond `transcribe`."""
from __future__ import annotations

import torch


class NoCTCOutput(ValueError):
    """The model has no CTC output (e.g. a transducer trained without its auxiliary CTC head)."""


def ctc_logits_fn(model):
    """The function (waveforms, lengths) -> (CTC logits (B, frames, vocab), frame lengths) of `model`, full context.

    The model's own `ctc_logits` when it has one (an exported ONNX model does), else the known CTC heads: the
    conformer's `encode`, hf-ctc's logits, the transducer's auxiliary CTC head. Pure torch (the ONNX export
    traces it).
    """
    if hasattr(model, "ctc_logits"):
        return model.ctc_logits
    if hasattr(model, "head") and hasattr(model, "encode"):  # conformer-CTC: encode() ends in the CTC head
        return model.encode
    if hasattr(model, "_logits"):  # hf-ctc
        return model._logits
    if getattr(model, "ctc_head", None) is not None:  # rnn-t with ctc_weight > 0
        return model.ctc_head_logits
    raise NoCTCOutput(f"model {getattr(model, 'name', type(model).__name__)!r} has no CTC output: beam search and "
                      f"ONNX export need a CTC model (conformer, hf-ctc, or rnn-t with ctc_weight > 0)")


@torch.inference_mode()
def ctc_logits(model, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded waveforms (B, T) -> CTC logits (B, frames, vocab) and frame lengths (B,) (see `ctc_logits_fn`)."""
    return ctc_logits_fn(model)(waveforms.to(model.device), lengths.to(model.device))


def ctc_log_probs(model, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`ctc_logits` as float32 log-probabilities on the CPU (what the flashlight decoder reads)."""
    logits, frames = ctc_logits(model, waveforms, lengths)
    return logits.float().log_softmax(-1).cpu(), frames.cpu()
