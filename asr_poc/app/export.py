"""A model exported as `asr-poc export` does it: a run's best.pt (else last.pt), or a checkpoint file, written to
ONNX next to it (and dynamically quantised to int8 when asked), ready for `Transcriber.from_checkpoint("x.onnx")`.

The export is `asr_poc.export` (torch, onnx), imported inside the call.
"""
from __future__ import annotations

import os
from typing import Optional

__all__ = ["export_run"]


def export_run(run_or_checkpoint: str, root: Optional[str | os.PathLike] = None, int8: bool = False,
               out_dir: Optional[str | os.PathLike] = None, streaming: bool = False) -> dict:
    """Export the checkpoint of a run (id or folder, under `root`) or a checkpoint file; returns the paths, sizes
    and the time it took (`onnx`, `onnx_bytes`, `export_seconds`, and `int8`, `int8_bytes` with `int8`).

    `streaming`: the chunk step of a streaming whisper-ctc or conformer with its state as inputs and outputs
    (`asr_poc.export_streaming`: `model-streaming.onnx`, `tokens.txt`)."""
    from ..export import export_checkpoint, resolve_checkpoint

    checkpoint = resolve_checkpoint(run_or_checkpoint, root=root)
    if streaming:
        from ..export_streaming import export_streaming

        return export_streaming(checkpoint, int8=int8, out_dir=out_dir)
    return export_checkpoint(checkpoint, int8=int8, out_dir=out_dir)
