"""A streaming conformer-CTC's chunk step as one ONNX graph with explicit state in and out, and its onnxruntime runner.

The same form as the whisper-ctc export (`export_streaming.py`, which writes, checks, loads and exports both): fixed
shapes, every piece of state an input and the next state an output, the settings in flat metadata props. One call:

    inputs   x                   (1, W, n_mels) float     log-mel frames of one chunk: W = chunk x subsampling (4 or
                                                          8) frames; the next call's window starts W frames later
             num_feature_frames  (1,) int64               valid frames of x (W; fewer only for the last chunk)
             cached_len          (1,) int64               valid attention-cache frames (the newest `cached_len`)
             cached_subsampling_j (1, C_j, 1, F_j)        conv layer j's pending input frame (its zero padding at start)
             cached_key_i,       (1, heads, S, head_dim)  per encoder layer i: keys and values of the S =
             cached_value_i                               left_context_len frames before the chunk
             cached_conv_i       (1, kernel - 1, dim)     the causal depthwise convolution's last kernel-1 inputs
    outputs  log_probs           (1, chunk, vocab)        CTC log-probabilities of the chunk's frames
             num_frames          (1,) int64               how many of them are valid (chunk, fewer for the last one)
             new_*                                        the next state, same shapes

Why fixed shapes are exact: after W frames each stride-2 convolution of `ConvSubsampling.stream` has exactly one
input frame left over (the first call's is the zero padding), so each layer runs with time padding 0 over
[pending, new] and outputs chunk x factor / 2^(j+1) frames. The last, partial window is padded with zero frames and
each layer's outputs past its valid count ((v - 1) // 2 + 1) are zeroed, because the full-context pass pads each
layer's input with one zero frame, not with the previous layer's output of zeros. The state after a partial chunk is
not meant to be carried on. S is `left_chunks` x chunk frames; with `left_chunks: null` a fixed 30 s
(`UNBOUNDED_CACHE_SECONDS`): past that the graph forgets what the torch stream still attends to. The log-mel
(`StreamingLogMel`) stays outside the graph, in torch.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .export import OnnxStreamingModel

FORMAT = "conformer-ctc-streaming"
UNBOUNDED_CACHE_SECONDS = 30  # left_chunks null: the cache holds the last 30 s


class _ChunkGraph(nn.Module):
    """`ConformerCTC.stream_step` for one window of W feature frames, in fixed shapes with the state as tensors."""

    def __init__(self, model, layout: dict):
        super().__init__()
        self.subsampling, self.layers, self.head = model.subsampling, model.encoder.conformer_layers, model.head
        self.chunk, self.window = layout["chunk_frames"], layout["window"]
        self.cache_frames, self.cache_limit = layout["cache_frames"], layout["cache_limit"]

    def subsample(self, x: torch.Tensor, valid: torch.Tensor, pending: tuple) -> tuple:
        """x (1, W, n_mels) with `valid` frames -> (chunk frames (1, chunk, dim), valid of them, next pending)."""
        sub, new_pending = self.subsampling, []
        h = (x * (torch.arange(self.window) < valid)[None, :, None].to(x.dtype)).unsqueeze(1)
        for j in range(sub.layers):
            conv, act = sub.conv[2 * j], sub.conv[2 * j + 1]
            buf = torch.cat([pending[j], h], dim=2)
            new_pending.append(buf[:, :, -1:])
            h = act(F.conv2d(buf, conv.weight, conv.bias, stride=2, padding=(0, 1)))
            valid = torch.div(valid - 1, 2, rounding_mode="floor") + 1  # zero past it: the next layer's padding
            h = h * (torch.arange(h.shape[2]) < valid)[None, None, :, None].to(h.dtype)
        return sub._project(h), valid, new_pending

    def forward(self, x, num_feature_frames, cached_len, *state):
        n = self.subsampling.layers
        h, frames, new_pending = self.subsample(x, num_feature_frames.clamp(0, self.window), state[:n])
        keep = torch.cat([torch.arange(self.cache_frames) >= self.cache_frames - cached_len,
                          torch.arange(self.chunk) < frames])
        keep = keep[None, None, None, :].expand(1, 1, self.chunk, -1)  # (1, 1, chunk, S + chunk), True = attend
        new_caches = []
        for i, layer in enumerate(self.layers):
            key, value, history = state[n + 3 * i : n + 3 * i + 3]
            h, kv, history = layer(h, keep, True, torch.stack([key, value], dim=1), history)
            new_caches += [torch.cat([key, kv[:, 0]], dim=2)[:, :, self.chunk :],
                           torch.cat([value, kv[:, 1]], dim=2)[:, :, self.chunk :], history]
        new_len = (cached_len + frames).clamp(max=self.cache_limit)
        return (self.head(h).log_softmax(-1), frames, new_len, *new_pending, *new_caches)


def _layout(model) -> dict:
    """Shapes and settings of the streaming graph of `model` (a streaming conformer)."""
    c, sub = model.spec.arch, model.subsampling
    frame_ms = model.chunk_ms / model.chunk_frames
    left = model.left_chunks
    limit = round(UNBOUNDED_CACHE_SECONDS * 1000 / frame_ms) if left is None else left * model.chunk_frames
    pending, freq = [], c.input_dim
    for j in range(sub.layers):
        pending.append([sub.conv[2 * j].in_channels, freq])
        freq = (freq - 1) // 2 + 1
    prior = getattr(model.frontend, "prior_mean", None)
    window = model.chunk_frames * c.subsampling
    return {"chunk_frames": model.chunk_frames, "chunk_ms": model.chunk_ms, "frame_ms": frame_ms,
            "subsampling": c.subsampling, "window": window, "shift": window, "n_mels": c.input_dim,
            "pending": pending, "dim": c.encoder_dim, "heads": c.num_heads, "head_dim": c.encoder_dim // c.num_heads,
            "layers": c.num_layers, "kernel_size": c.kernel_size, "left_chunks": left, "cache_limit": limit,
            "cache_frames": max(1, limit), "vocab_size": len(model.tokenizer),
            "frontend_delay_ms": model.frontend_delay_ms,
            "prior_mean": None if prior is None else prior.detach().cpu().tolist()}


def _names(layout: dict) -> tuple[list[str], list[str]]:
    state = ["cached_len", *[f"cached_subsampling_{j}" for j in range(len(layout["pending"]))],
             *[f"cached_{kind}_{i}" for i in range(layout["layers"]) for kind in ("key", "value", "conv")]]
    return ["x", "num_feature_frames", *state], ["log_probs", "num_frames", *[f"new_{s}" for s in state]]


def initial_state(layout: dict) -> dict[str, np.ndarray]:
    """The graph's state inputs at the start of a stream: zeros and no valid cache frames."""
    state = {"cached_len": np.zeros(1, dtype=np.int64)}
    for j, (channels, freq) in enumerate(layout["pending"]):
        state[f"cached_subsampling_{j}"] = np.zeros((1, channels, 1, freq), np.float32)
    cache = (1, layout["heads"], layout["cache_frames"], layout["head_dim"])
    for i in range(layout["layers"]):
        state[f"cached_key_{i}"] = np.zeros(cache, np.float32)
        state[f"cached_value_{i}"] = np.zeros(cache, np.float32)
        state[f"cached_conv_{i}"] = np.zeros((1, layout["kernel_size"] - 1, layout["dim"]), np.float32)
    return state


def sherpa_metadata(model, layout: dict) -> dict[str, str]:
    """Flat metadata props in sherpa-onnx's manner (strings; `T`, `decode_chunk_len`, `left_context_len`, ...)."""
    left, f = layout["left_chunks"], model.features
    return {"model_type": FORMAT, "version": "1", "model_author": "asr-poc", "sample_rate": str(model.sample_rate),
            "feature": f"log-mel, {f.n_mels} bins, n_fft {f.n_fft}, hop {f.hop_length}, normalize {f.normalize}; "
                       "computed outside the graph (StreamingLogMel)",
            "n_mels": str(layout["n_mels"]), "T": str(layout["window"]), "decode_chunk_len": str(layout["shift"]),
            "chunk_size": str(layout["chunk_frames"]), "chunk_ms": f"{layout['chunk_ms']:g}",
            "frame_shift_ms": f"{layout['frame_ms']:g}", "subsampling_factor": str(layout["subsampling"]),
            "left_chunks": "-1" if left is None else str(left), "left_context_len": str(layout["cache_frames"]),
            "max_left_context_seconds": f"{layout['cache_limit'] * layout['frame_ms'] / 1000:g}",
            "num_encoder_layers": str(layout["layers"]), "encoder_dim": str(layout["dim"]),
            "num_heads": str(layout["heads"]), "head_dim": str(layout["head_dim"]),
            "cnn_module_kernel": str(layout["kernel_size"]), "vocab_size": str(layout["vocab_size"]),
            "blank_id": str(model.tokenizer.blank_id), "vocab": json.dumps(model.tokenizer.vocab, ensure_ascii=False),
            "comment": "streaming conformer-ctc chunk step: x plus state in, log_probs plus next state out" + (
                f"; left_chunks null: the cache keeps the last {UNBOUNDED_CACHE_SECONDS} s only" if left is None
                else "")}


def conformer_parts(model) -> tuple:
    """What `export_streaming.export_streaming_onnx` writes for a streaming conformer: (format, graph, example
    inputs, (input names, output names), layout, sherpa props)."""
    layout = _layout(model)
    names = _names(layout)
    state = initial_state(layout)
    x = torch.randn(1, layout["window"], layout["n_mels"], generator=torch.Generator().manual_seed(0))
    example = (x, torch.tensor([layout["window"]]), *(torch.from_numpy(state[n]) for n in names[0][2:]))
    return FORMAT, _ChunkGraph(model, layout), example, names, layout, sherpa_metadata(model, layout)


class OnnxStreamingConformerModel(OnnxStreamingModel):
    """A streaming conformer's `model-streaming.onnx` run by onnxruntime (`export.OnnxStreamingModel`: chunk by
    chunk, `init_stream_state()`, `stream_step(samples, state, final)`, `transcribe`), with `StreamingLogMel` in
    front."""

    format, kind = FORMAT, "conformer"
    count_input = "num_feature_frames"
    window_text = "feature frames: chunk x subsampling"
    lookahead_ms = 0.0  # the subsampling's look-ahead ends inside the chunk (models/conformer.py)

    def __init__(self, path: str | os.PathLike, threads: Optional[int] = None):
        super().__init__(path, threads)
        self.frontend_delay_ms = float(self.layout["frontend_delay_ms"])

    def _streaming_features(self):
        from .models.features import FeatureSpec, LogMel, StreamingLogMel

        frontend = LogMel(FeatureSpec.from_dict(self.config["features"]))
        if self.layout["prior_mean"] is not None:  # the causal/utterance normalisation's trained prior
            frontend.prior_mean.copy_(torch.tensor(self.layout["prior_mean"]))
        return StreamingLogMel(frontend)

    def _initial_graph_state(self) -> dict[str, np.ndarray]:
        return initial_state(self.layout)
