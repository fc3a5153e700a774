"""`traceable(model)`: a copy of a model for the ONNX exporter, computing the same logits with fewer, larger ops.

None of the changes touches a weight, and every module not named here is the original's:

- the log-mel STFT becomes DFT-basis matrix products (`stft_matmul.dft_frontend`);
- whisper-ctc's encoder always builds its padding mask (its eager `embed` drops an all-true mask, a branch on data
  that `torch.export` cannot trace; an all-true mask attends to the same keys);
- the conformer encoder runs full context with the key padding mask of eager `transcribe` instead of the chunk
  mask (which also lets padded frames see themselves), and each depthwise convolution is one grouped `Conv` with
  the batch norm folded into its weights (eager decoding's time-major loop is k slices, multiplies and adds per
  layer in a graph). Frames past an utterance's end differ (they are never decoded); valid frames are the same;
- key padding masks are spelt out per query, (B, 1, T, T): ONNX `Attention` (opset 23), which the exporter makes
  of `scaled_dot_product_attention`, takes no mask broadcast over queries in onnxruntime.
"""
from __future__ import annotations

import copy
import types
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .stft_matmul import dft_frontend
from .streaming import ConformerEncoder, ConvolutionModule, chunk_mask
from .whisper_encoder import WhisperEncoder


def _query_by_key(keep: torch.Tensor) -> torch.Tensor:
    """Key padding (B, T) as an attention mask (B, 1, T, T): ONNX `Attention` wants one row per query."""
    return keep[:, None, None, :].expand(-1, 1, keep.shape[1], -1)


def _embed_masked(encoder: WhisperEncoder, mels: torch.Tensor, frames: torch.Tensor, chunk: Optional[int] = None,
                  left_chunks: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`WhisperEncoder.embed` with a mask (B, 1, T', T') always returned: key padding, or the chunk mask of a
    streaming model (the exported graph takes up to 30 s either way)."""
    x = F.gelu(encoder.conv2(F.gelu(encoder.conv1(mels)))).transpose(1, 2)
    lengths = encoder.output_lengths(frames).clamp(max=x.shape[1])
    if chunk is not None:
        mask = ~chunk_mask(lengths, x.shape[1], chunk, left_chunks)[:, None]
    else:
        mask = _query_by_key(torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])
    return x + encoder.positions[: x.shape[1]].to(x.dtype), lengths, mask


def _convolution_folded(module: ConvolutionModule, x: torch.Tensor, causal: bool = False,
                        history: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, None]:
    """`ConvolutionModule.forward` in eval over a whole utterance: one grouped convolution, batch norm folded."""
    pointwise1, _, depthwise, norm, act, pointwise2, _ = module.sequential
    y = F.glu(F.linear(module.layer_norm(x), pointwise1.weight[:, :, 0], pointwise1.bias), dim=-1)  # (B, T, D)
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    weight = depthwise.weight * scale[:, None, None]
    bias = (depthwise.bias - norm.running_mean) * scale + norm.bias
    k = module.kernel_size
    y = F.pad(y.transpose(1, 2), (k - 1, 0) if causal else (k // 2, k // 2))
    y = F.conv1d(y, weight, bias, groups=depthwise.groups).transpose(1, 2)
    return F.linear(act(y), pointwise2.weight[:, :, 0], pointwise2.bias), None


def _encode_full_context(encoder: ConformerEncoder, x: torch.Tensor, lengths: torch.Tensor,
                         chunk: Optional[int] = None, left_chunks: Optional[int] = None, causal: bool = False
                         ) -> torch.Tensor:
    """`ConformerEncoder.forward` with full context (`chunk` and `left_chunks` are not used): key padding mask."""
    mask = _query_by_key(torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])
    for layer in encoder.conformer_layers:
        x, _, _ = layer(x, mask, causal)
    return x


def _with_method(module: nn.Module, name: str, fn) -> nn.Module:
    out = copy.copy(module)
    setattr(out, name, types.MethodType(fn, out))
    return out


def _conformer_encoder(encoder: ConformerEncoder) -> ConformerEncoder:
    layers = []
    for layer in encoder.conformer_layers:
        layer = copy.copy(layer)
        layer._modules = dict(layer._modules, conv_module=_with_method(layer.conv_module, "forward",
                                                                       _convolution_folded))
        layers.append(layer)
    out = _with_method(encoder, "forward", _encode_full_context)
    out._modules = dict(out._modules, conformer_layers=nn.ModuleList(layers))
    return out


def traceable(model: nn.Module) -> nn.Module:
    """A shallow copy of `model` for export, full context (module docstring); the original is left as it was."""
    out = dft_frontend(model)
    out = copy.copy(out) if out is model else out
    encoder = getattr(out, "encoder", None)
    if isinstance(encoder, WhisperEncoder):
        out._modules = dict(out._modules, encoder=_with_method(encoder, "embed", _embed_masked))
    elif isinstance(encoder, ConformerEncoder):
        out._modules = dict(out._modules, encoder=_conformer_encoder(encoder))
    return out
