"""A streaming whisper-ctc's chunk step as one ONNX graph with explicit state in and out, and its onnxruntime runner.

The form sherpa-onnx's streaming models use: fixed shapes per chunk, every piece of state an input and the next
state an output, the caller carrying it from call to call, and the settings in flat metadata props. One call:

    inputs   x                  (1, T, n_mels) float   log-mel frames m[16k .. 16k+16] of chunk k: its 2 x chunk
                                                       frames and one more (the convolutions' look-ahead); the next
                                                       call's window starts 2 x chunk frames later (overlap of 1)
             num_mel_frames     (1,) int64             valid frames of x (T; fewer only for the last, partial chunk)
             position           (1,) int64             encoder frames before this chunk (the positional embedding)
             cached_len         (1,) int64             valid cache frames (the newest `cached_len` of the cache)
             cached_mel         (1, 1, n_mels)         the mel frame before x (conv1's left input; zeros at start)
             cached_conv1       (1, 1, width)          conv1's output before this window (conv2's left input)
             cached_key_i,      (1, heads, S, head_dim) per layer i (encoder layers, then head layers): keys and
             cached_value_i                            values of the S = left_context_len frames before the chunk
    outputs  log_probs          (1, chunk, vocab)      CTC log-probabilities of the chunk's frames
             num_frames         (1,) int64             how many of them are valid (chunk, fewer for the last one)
             new_*                                     the next state, same shapes (new_position, new_cached_len,
                                                       new_cached_mel, new_cached_conv1, new_cached_key_i, ...)

S is `left_chunks` x chunk frames; with `left_chunks: null` (attention to the whole past) it is a fixed maximum,
1500 frames (30 s, `UNBOUNDED_CACHE_FRAMES`): past 30 s of audio the graph forgets what the torch stream still
attends to, so its frames can differ there. The feature extraction stays outside the graph (the streamed log-mel
with its causal floor, `StreamingWhisperLogMel`, in torch), as sherpa-onnx computes fbank features outside its
models. sherpa-onnx itself has no model type for a Whisper-encoder CTC model, so it cannot run this file as is;
onnxruntime can (`OnnxStreamingCTCModel`, with `init_stream_state` / `stream_step` as the torch model has, which
`Transcriber.from_checkpoint("model-streaming.onnx")` loads).

A streaming conformer's chunk step is built in `export_streaming_conformer.py`; this module writes, checks, loads
(`load_onnx_model`) and exports (`export_streaming`) either kind.

Write one with `export_streaming(checkpoint)` or `python -m asr_poc.export_streaming CHECKPOINT [--int8]`:
`model-streaming.onnx` (and `model-streaming.int8.onnx`, onnxruntime's dynamic int8 quantisation of the weight
matrix products, the final projection kept float) and `tokens.txt` (sherpa-onnx's "symbol id" lines) next to the
checkpoint. Before a file is renamed into place its stream is compared with the torch stream.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .export import (METADATA_KEY, ExportError, OnnxCTCModel, OnnxStreamingModel, _replace_atomically, exporting,
                     quantize_int8, read_metadata)
from .export_streaming_conformer import FORMAT as CONFORMER_FORMAT
from .export_streaming_conformer import OnnxStreamingConformerModel, conformer_parts
from .text import CharTokenizer

OPSET = 23
UNBOUNDED_CACHE_FRAMES = 1500  # left_chunks null: the cache holds the last 30 s (whisper's positional table)
FORMAT = "whisper-ctc-streaming"


class _ChunkGraph(nn.Module):
    """`WhisperCTC._encode_chunk` after the two streamed convolutions, in fixed shapes with the state as tensors."""

    def __init__(self, model, cache_frames: int, cache_limit: int):
        super().__init__()
        enc = model.encoder
        self.chunk = model.chunk_frames
        self.window = 2 * self.chunk + 1  # mel frames in: the chunk's and one of look-ahead
        self.conv1, self.conv2, self.ln_post, self.head = enc.conv1, enc.conv2, enc.ln_post, model.head
        self.blocks = nn.ModuleList([*enc.blocks, *model.head_blocks])
        self.encoder_layers = len(enc.blocks)
        self.cache_frames, self.cache_limit = cache_frames, cache_limit
        self.register_buffer("table", enc.positions.detach().clone(), persistent=False)
        channels = enc.positions.shape[1]
        increment = np.log(10000.0) / (channels // 2 - 1)  # `whisper_encoder.sinusoids`, for rows past the table
        self.register_buffer("inv_timescales", torch.exp(-increment * torch.arange(channels // 2)), persistent=False)

    def positions(self, position: torch.Tensor) -> torch.Tensor:
        """Rows position .. position + chunk of whisper's table, continued by sinusoids past its end."""
        idx = position + torch.arange(self.chunk)  # (chunk,)
        inside = self.table[idx.clamp(max=self.table.shape[0] - 1)]
        scaled = idx.to(torch.float32)[:, None] * self.inv_timescales[None, :]
        outside = torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)
        return torch.where((idx < self.table.shape[0])[:, None], inside, outside)

    def forward(self, x, num_mel_frames, position, cached_len, cached_mel, cached_conv1, *caches):
        valid_mel = num_mel_frames.clamp(0, self.window)
        x = x * (torch.arange(self.window) < valid_mel)[None, :, None].to(x.dtype)  # padding frames are zeros
        mels = torch.cat([cached_mel, x], dim=1).transpose(1, 2)  # (1, n_mels, window + 1)
        c1 = F.gelu(F.conv1d(mels, self.conv1.weight, self.conv1.bias))  # (1, width, 2 chunk)
        c1 = c1 * (torch.arange(2 * self.chunk) < valid_mel)[None, None, :].to(c1.dtype)  # conv2's right padding
        c = torch.cat([cached_conv1.transpose(1, 2), c1], dim=2)  # (1, width, 2 chunk + 1)
        h = F.gelu(F.conv1d(c, self.conv2.weight, self.conv2.bias, stride=2)).transpose(1, 2)  # (1, chunk, width)
        frames = torch.div(valid_mel - 1, 2, rounding_mode="floor") + 1  # valid encoder frames (0 when no mel)
        frames = frames.clamp(0, self.chunk)
        h = h + self.positions(position).to(h.dtype)
        keep = torch.cat([torch.arange(self.cache_frames) >= self.cache_frames - cached_len,
                          torch.arange(self.chunk) < frames])
        keep = keep[None, None, None, :].expand(1, 1, self.chunk, -1)  # (1, 1, chunk, S + chunk): what ORT takes
        new_caches = []
        for i, block in enumerate(self.blocks):
            if i == self.encoder_layers:
                h = self.ln_post(h)
            h, keys, values = block.attend(h, keep, caches[2 * i], caches[2 * i + 1])
            new_caches += [keys[:, :, self.chunk:], values[:, :, self.chunk:]]
        if len(self.blocks) == self.encoder_layers:
            h = self.ln_post(h)
        log_probs = self.head(h).log_softmax(-1)
        new_len = (cached_len + frames).clamp(max=self.cache_limit)
        new_mel = x[:, 2 * self.chunk - 1 : 2 * self.chunk]  # m[16k + 15]: the next window's left frame
        new_conv1 = c1[:, :, 2 * self.chunk - 1 :].transpose(1, 2)
        return (log_probs, frames, position + frames, new_len, new_mel, new_conv1, *new_caches)


def _layout(model) -> dict:
    """Shapes and settings of the streaming graph of `model` (a streaming whisper-ctc)."""
    dims = model.encoder.dims
    left = model.spec.arch.left_chunks
    limit = UNBOUNDED_CACHE_FRAMES if left is None else left * model.chunk_frames
    layers = len(model.encoder.blocks) + len(model.head_blocks)
    return {"chunk_frames": model.chunk_frames, "chunk_ms": model.chunk_ms, "window": 2 * model.chunk_frames + 1,
            "shift": 2 * model.chunk_frames, "n_mels": dims.n_mels, "width": dims.width, "heads": dims.heads,
            "head_dim": dims.width // dims.heads, "layers": layers, "left_chunks": left, "cache_limit": limit,
            "cache_frames": max(1, limit), "vocab_size": len(model.tokenizer)}


def _names(layers: int) -> tuple[list[str], list[str]]:
    caches = [f"cached_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    inputs = ["x", "num_mel_frames", "position", "cached_len", "cached_mel", "cached_conv1", *caches]
    outputs = ["log_probs", "num_frames", "new_position", "new_cached_len", "new_cached_mel", "new_cached_conv1",
               *[f"new_{c}" for c in caches]]
    return inputs, outputs


def initial_state(layout: dict) -> dict[str, np.ndarray]:
    """The graph's state inputs at the start of a stream: zeros, no valid cache frames, position 0."""
    one = np.zeros(1, dtype=np.int64)
    state = {"position": one, "cached_len": one.copy(),
             "cached_mel": np.zeros((1, 1, layout["n_mels"]), np.float32),
             "cached_conv1": np.zeros((1, 1, layout["width"]), np.float32)}
    cache = (1, layout["heads"], layout["cache_frames"], layout["head_dim"])
    for i in range(layout["layers"]):
        state[f"cached_key_{i}"] = np.zeros(cache, np.float32)
        state[f"cached_value_{i}"] = np.zeros(cache, np.float32)
    return state


def _example(layout: dict) -> tuple:
    g = torch.Generator().manual_seed(0)
    state = initial_state(layout)
    x = torch.randn(1, layout["window"], layout["n_mels"], generator=g)
    names = _names(layout["layers"])[0][2:]
    return (x, torch.tensor([layout["window"]]), *(torch.from_numpy(state[n]) for n in names))


def _check_model(model) -> None:
    streaming = getattr(model, "streaming", False)
    if getattr(model, "name", None) not in ("whisper-ctc", "conformer") or not streaming:
        raise ExportError(f"the streaming export takes a streaming whisper-ctc or conformer model (models.whisper-ctc"
                          f" or models.conformer with streaming_chunk_ms set); this is "
                          f"{getattr(model, 'name', type(model).__name__)!r}{'' if streaming else ' without streaming'}")


def sherpa_metadata(model, layout: dict) -> dict[str, str]:
    """Flat metadata props in sherpa-onnx's manner (strings; its streaming models carry `T`, `decode_chunk_len`,
    `left_context_len`, `vocab_size`, `model_type`)."""
    left = layout["left_chunks"]
    return {"model_type": FORMAT, "version": "1", "model_author": "asr-poc", "sample_rate": str(model.sample_rate),
            "feature": "whisper log-mel, 80 bins, n_fft 400, hop 160, log10 floored 8 below the loudest bin so far, "
                       "(x + 4) / 4; computed outside the graph",
            "n_mels": str(layout["n_mels"]), "T": str(layout["window"]), "decode_chunk_len": str(layout["shift"]),
            "chunk_size": str(layout["chunk_frames"]), "chunk_ms": str(int(layout["chunk_ms"])),
            "frame_shift_ms": "20", "left_chunks": "-1" if left is None else str(left),
            "left_context_len": str(layout["cache_frames"]),
            "max_left_context_seconds": f"{layout['cache_limit'] * 0.02:g}",
            "num_layers": str(layout["layers"]), "num_heads": str(layout["heads"]),
            "head_dim": str(layout["head_dim"]), "d_model": str(layout["width"]),
            "vocab_size": str(layout["vocab_size"]), "blank_id": str(model.tokenizer.blank_id),
            "vocab": json.dumps(model.tokenizer.vocab, ensure_ascii=False),
            "comment": "streaming whisper-ctc chunk step: x plus state in, log_probs plus next state out" + (
                "; left_chunks null: the cache keeps the last 30 s only" if left is None else "")}


def _whisper_parts(model) -> tuple:
    """(format, graph, example inputs, (input names, output names), layout, sherpa props) of a whisper-ctc."""
    layout = _layout(model)
    graph = _ChunkGraph(model, layout["cache_frames"], layout["cache_limit"])
    return FORMAT, graph, _example(layout), _names(layout["layers"]), layout, sherpa_metadata(model, layout)


def export_streaming_onnx(model, path: str | os.PathLike, source: str = "") -> Path:
    """Export the chunk step of `model` (a streaming `WhisperCTC` or `ConformerCTC`) to `path`; checked against the
    torch stream before it is renamed into place."""
    import onnx

    _check_model(model)
    path = Path(path)
    with exporting(model, path, f"streaming ONNX export of {model.name!r}") as tmp:
        parts = conformer_parts if model.name == "conformer" else _whisper_parts
        fmt, graph, example, (inputs, outputs), layout, props = parts(model)
        with torch.no_grad():
            program = torch.onnx.export(graph.eval(), example, input_names=inputs, output_names=outputs,
                                        opset_version=OPSET, dynamo=True, verbose=False)
        proto = program.model_proto
        meta = {"format": 1, "streaming": fmt, "model_name": model.name, "config": model.config,
                "source": source, "sample_rate": model.sample_rate, "n_fft": model.features.n_fft,
                "layout": layout, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
                "quantized": False}
        onnx.helper.set_model_props(proto, {**props, METADATA_KEY: json.dumps(meta, default=str)})
        onnx.save(proto, tmp)
        _check_stream(model, tmp)
    return path


def stream_log_probs(model, wav: torch.Tensor, push: int) -> torch.Tensor:
    """The torch stream's per-frame CTC log-probs (frames, vocab) of `wav` pushed `push` samples at a time (what
    `model.head` computes for each chunk `stream_step` encodes)."""
    pieces = []
    hook = model.head.register_forward_hook(lambda module, inputs, output: pieces.append(output))
    try:
        state = model.init_stream_state()
        for start in range(0, wav.numel(), push):
            model.stream_step(wav[start : start + push], state)
        model.stream_step(torch.zeros(0), state, final=True)
    finally:
        hook.remove()
    return torch.cat(pieces, dim=1)[0].float().log_softmax(-1) if pieces else torch.zeros(0, len(model.tokenizer))


def _check_stream(model, path: Path) -> None:
    """Stream 1.37 s of noise through the file and the torch model: other log-probs refuse the file."""
    wav = torch.randn(int(1.37 * model.sample_rate), generator=torch.Generator().manual_seed(1)) * 0.1
    ref = stream_log_probs(model, wav, 2560)
    try:
        got = load_onnx_model(path, threads=1).stream_log_probs(wav, 2560)
    except Exception as err:
        raise ExportError(f"the streaming graph of {model.name!r} does not run in onnxruntime: "
                          f"{str(err).splitlines()[0][:200]}") from None
    if got.shape != ref.shape or float((got - ref).abs().max()) > 1e-3 * max(1.0, float(ref.abs().max())):
        raise ExportError(f"the streaming graph of {model.name!r} computes other log-probs than the torch stream "
                          f"({tuple(got.shape)} vs {tuple(ref.shape)}); not written")


def write_tokens(tokenizer: CharTokenizer, path: Path) -> Path:
    """sherpa-onnx's tokens.txt: one "symbol id" line per token (the word boundary `|` as in the vocabulary)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    symbols = sorted(((s, i) for s, i in tokenizer.vocab.items() if isinstance(i, int)), key=lambda kv: kv[1])
    tmp.write_text("".join(f"{s} {i}\n" for s, i in symbols), encoding="utf-8")  # ids only, not a BPE model
    _replace_atomically(tmp, path)
    return path


def export_streaming(checkpoint: str | os.PathLike, int8: bool = True, out_dir: Optional[str | os.PathLike] = None,
                     name: str = "model-streaming") -> dict:
    """Export a streaming whisper-ctc or conformer checkpoint next to itself (or into `out_dir`): `<name>.onnx`,
    `<name>.int8.onnx` with `int8`, and `tokens.txt`. Returns the paths, sizes and the export time."""
    from .models.interface import BaseASRModel

    checkpoint = Path(checkpoint)
    model = BaseASRModel.from_checkpoint(checkpoint, device="cpu")
    _check_model(model)
    folder = Path(out_dir) if out_dir else checkpoint.parent
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fp32 = export_streaming_onnx(model, folder / f"{name}.onnx", source=str(checkpoint))
    result = {"checkpoint": str(checkpoint), "onnx": str(fp32), "onnx_bytes": fp32.stat().st_size,
              "tokens": str(write_tokens(model.tokenizer, folder / "tokens.txt")),
              "export_seconds": round(time.perf_counter() - start, 1)}
    if int8:
        q = quantize_int8(fp32, folder / f"{name}.int8.onnx", output="log_probs")
        result.update(int8=str(q), int8_bytes=q.stat().st_size)
    return result


class OnnxStreamingCTCModel(OnnxStreamingModel):
    """A streaming whisper-ctc's `model-streaming.onnx` run by onnxruntime (`export.OnnxStreamingModel`), with
    whisper's streamed log-mel in front."""

    format, kind = FORMAT, "whisper-ctc"
    count_input = "num_mel_frames"
    window_text = "mel frames: the chunk's 2 x chunk + 1 of look-ahead"
    lookahead_ms, frontend_delay_ms = 30.0, 0.0  # as `WhisperCTC` (whisper_ctc.LOOKAHEAD_MS)

    def _streaming_features(self):
        from .models.whisper_encoder import WhisperLogMel
        from .models.whisper_stream import StreamingWhisperLogMel

        mel = WhisperLogMel(self.layout["n_mels"], causal=True)
        return StreamingWhisperLogMel(mel.filters, mel.window)

    def _initial_graph_state(self) -> dict[str, np.ndarray]:
        return initial_state(self.layout)


def load_onnx_model(path: str | os.PathLike, threads: Optional[int] = None):
    """An exported file run by onnxruntime: `OnnxStreamingCTCModel` (whisper-ctc) or `OnnxStreamingConformerModel`
    for a streaming export (its metadata says which), else `export.OnnxCTCModel`."""
    streaming = read_metadata(path).get("streaming")
    if not streaming:
        return OnnxCTCModel(path, threads=threads)
    runner = OnnxStreamingConformerModel if streaming == CONFORMER_FORMAT else OnnxStreamingCTCModel
    return runner(path, threads=threads)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asr_poc.export_streaming",
                                description="export a streaming whisper-ctc or conformer checkpoint's chunk step "
                                            "to ONNX (explicit state in/out), next to the checkpoint")
    p.add_argument("checkpoint", help="a streaming whisper-ctc or conformer checkpoint (.pt), or a run id/folder")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 (dynamic quantisation) copy")
    p.add_argument("--out", default=None, help="folder to write into (default: the checkpoint's)")
    p.add_argument("--root", default=None, help="runs folder, for a run id")
    args = p.parse_args(argv)
    from .export import resolve_checkpoint

    try:
        if args.checkpoint.endswith(".pt") and not Path(args.checkpoint).is_file():
            raise ExportError(f"{args.checkpoint}: no such checkpoint file")
        result = export_streaming(resolve_checkpoint(args.checkpoint, root=args.root), int8=not args.no_int8,
                                  out_dir=args.out)
    except Exception as err:  # one line, as `asr-poc export` says it
        print(f"error: {str(err).splitlines()[0] if str(err) else err.__class__.__name__}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
