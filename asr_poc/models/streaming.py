"""The conformer encoder, full context or streaming: chunk masks, causal convolution and cached attention.

One layer serves three uses with the same weights:

- full context (`causal=False`, no chunk): every frame sees the whole utterance, as torchaudio's `Conformer`;
- chunked over a whole utterance (`chunk` frames, training and `transcribe` of a streaming model): each frame sees
  its own chunk and `left_chunks` chunks before it, and the depthwise convolution sees only the past (WeNet's U2,
  icefall's streaming conformers);
- one chunk at a time (`ConformerEncoder.stream`): the attention keys/values of earlier chunks and the last
  kernel-1 convolution inputs are carried in a state, which gives exactly the chunked pass's frames.

Parameter names are those of torchaudio's `Conformer` (`conformer_layers.N.ffn1.sequential.1.weight` ...), so weights
trained with it load unchanged. The layer is our own, on public torch API only (`nn.MultiheadAttention`'s parameters,
`F.scaled_dot_product_attention`): torchaudio's cannot stream, and its private convolution module changes between
releases. Pointwise convolutions run as matrix products on (B, T, D): no transposes, no convolution dispatch.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def chunk_mask(lengths: torch.Tensor, frames: int, chunk: Optional[int], left_chunks: Optional[int]) -> torch.Tensor:
    """Boolean mask (B, T, T), True = may not attend: padding, the future beyond a frame's chunk, and chunks more
    than `left_chunks` back. `chunk=None` leaves only padding (full context). A frame always sees itself."""
    idx = torch.arange(frames, device=lengths.device)
    blocked = torch.zeros(frames, frames, dtype=torch.bool, device=lengths.device)
    if chunk is not None:
        ci = idx // chunk
        blocked = ci[None, :] > ci[:, None]
        if left_chunks is not None:
            blocked |= ci[None, :] < ci[:, None] - left_chunks
    mask = blocked[None] | (idx[None, :] >= lengths[:, None])[:, None, :]
    return mask & ~torch.eye(frames, dtype=torch.bool, device=lengths.device)  # no row is all masked (padding rows)


def chunk_attention_mask(lengths: torch.Tensor, frames: int, chunk: Optional[int], left_chunks: Optional[int],
                         num_heads: int) -> torch.Tensor:
    """`chunk_mask` repeated per head, (B*heads, T, T), the layout `nn.MultiheadAttention` takes as `attn_mask`."""
    return chunk_mask(lengths, frames, chunk, left_chunks).repeat_interleave(num_heads, dim=0)


class FeedForward(nn.Module):
    """LayerNorm -> Linear -> SiLU -> Dropout -> Linear -> Dropout over (B, T, D) (torchaudio's layout)."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.sequential = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


class ConvolutionModule(nn.Module):
    """LayerNorm -> pointwise (2D) -> GLU -> depthwise (kernel k) -> BatchNorm -> SiLU -> pointwise -> Dropout.

    The submodules sit in `sequential` at torchaudio's indices (its weights load unchanged); `forward` runs them on
    (B, T, D) with the pointwise convolutions as matrix products.
    """

    def __init__(self, dim: int, kernel_size: int, dropout: float):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size ({kernel_size}) must be odd")
        self.layer_norm = nn.LayerNorm(dim)
        self.sequential = nn.Sequential(
            nn.Conv1d(dim, 2 * dim, 1), nn.GLU(dim=1), nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2,
                                                                  groups=dim),
            nn.BatchNorm1d(dim), nn.SiLU(), nn.Conv1d(dim, dim, 1), nn.Dropout(dropout))
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor, causal: bool = False, history: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x (B, T, D) -> (B, T, D). `causal`: the depthwise convolution sees only the past; `history` (B, k-1, D) holds
        the convolution inputs before x (zeros at the start). Returns the output and the new history (causal only)."""
        pointwise1, _, depthwise, norm, act, pointwise2, dropout = self.sequential
        y = F.glu(F.linear(self.layer_norm(x), pointwise1.weight[:, :, 0], pointwise1.bias), dim=-1)  # (B, T, D)
        k = self.kernel_size
        if causal:
            if history is None:
                history = y.new_zeros(y.shape[0], k - 1, y.shape[2])
            padded = torch.cat([history, y], dim=1)
            history = padded[:, padded.shape[1] - (k - 1):]
        else:
            padded = F.pad(y, (0, 0, k // 2, k // 2))
        if self.training:  # one convolution kernel call (and its backward) for training batches
            y = norm(F.conv1d(padded.transpose(1, 2), depthwise.weight, depthwise.bias, groups=depthwise.groups))
            y = y.transpose(1, 2)
        else:  # decoding: time-major depthwise, and batch norm as the per-channel affine map it is in eval
            y = depthwise_time_major(padded, depthwise.weight[:, 0], depthwise.bias)
            scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
            y = torch.addcmul(norm.bias - norm.running_mean * scale, y, scale)
        return dropout(F.linear(act(y), pointwise2.weight[:, :, 0], pointwise2.bias)), history


def depthwise_time_major(padded: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Depthwise convolution over time of `padded` (B, T+k-1, D) with `weight` (D, k): (B, T, D), as
    `F.conv1d(..., groups=D)` on (B, D, T) computes it, but on the time-major layout the layers use (no transposes)
    and, for the short sequences of batch-1 decoding, about twice as fast as the convolution kernel on one thread."""
    k = weight.shape[1]
    frames = padded.shape[1] - k + 1
    out = padded[:, :frames] * weight[:, 0]
    if bias is not None:
        out = out + bias
    for i in range(1, k):
        out = out.addcmul(padded[:, i : i + frames], weight[:, i])
    return out


class ConformerLayer(nn.Module):
    """Feed-forward/2, self-attention, convolution, feed-forward/2, LayerNorm, each with a residual (torchaudio's order,
    convolution after attention)."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, kernel_size: int, dropout: float):
        super().__init__()
        self.ffn1 = FeedForward(dim, ffn_dim, dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout)  # its parameters; run by `attend`
        self.self_attn_dropout = nn.Dropout(dropout)
        self.conv_module = ConvolutionModule(dim, kernel_size, dropout)
        self.ffn2 = FeedForward(dim, ffn_dim, dropout)
        self.final_layer_norm = nn.LayerNorm(dim)

    def attend(self, x: torch.Tensor, mask: Optional[torch.Tensor], cache: Optional[torch.Tensor] = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention of x (B, T, D) over `cache` (B, 2, H, S, D/H: keys and values of earlier frames) and itself.

        `mask` (B, 1, T, S+T), True = may attend, or None (all). Returns the output (B, T, D) and this call's keys and
        values (B, 2, H, T, D/H) for the next chunk's cache."""
        attn = self.self_attn
        b, t, d = x.shape
        heads = attn.num_heads
        qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(b, t, 3, heads, d // heads)
        q, kv = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1:].permute(0, 2, 3, 1, 4)  # (B, H, T, d), (B, 2, H, T, d)
        keys = kv if cache is None else torch.cat([cache, kv], dim=3)
        out = F.scaled_dot_product_attention(q, keys[:, 0], keys[:, 1], attn_mask=mask,
                                             dropout_p=attn.dropout if self.training else 0.0)
        return attn.out_proj(out.transpose(1, 2).reshape(b, t, d)), kv

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, causal: bool = False,
                cache: Optional[torch.Tensor] = None, history: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """x (B, T, D) -> (output (B, T, D), keys and values for the attention cache, convolution history)."""
        x = x + 0.5 * self.ffn1(x)
        a, kv = self.attend(self.self_attn_layer_norm(x), mask, cache)
        x = x + self.self_attn_dropout(a)
        c, history = self.conv_module(x, causal, history)
        x = x + c
        x = x + 0.5 * self.ffn2(x)
        return self.final_layer_norm(x), kv, history


class ConformerEncoder(nn.Module):
    """A stack of `ConformerLayer`s: `forward` over whole utterances, `stream` one chunk at a time."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, num_layers: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conformer_layers = nn.ModuleList(
            ConformerLayer(dim, ffn_dim, num_heads, kernel_size, dropout) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, chunk: Optional[int] = None,
                left_chunks: Optional[int] = None, causal: bool = False) -> torch.Tensor:
        """x (B, T, D) with `lengths` (B,) valid frames -> (B, T, D).

        `chunk` (frames) limits attention to a frame's chunk and `left_chunks` before it; `causal` makes the
        convolution causal (streaming mode). Full context without padding (batch 1) runs with no mask at all."""
        if chunk is not None:
            mask = ~chunk_mask(lengths, x.shape[1], chunk, left_chunks)[:, None]  # (B, 1, T, T), True = may attend
        elif bool((lengths < x.shape[1]).any()):  # padding keys only (B, 1, 1, T), as torchaudio's key_padding_mask
            mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])[:, None, None, :]
        else:
            mask = None
        for layer in self.conformer_layers:
            x, _, _ = layer(x, mask, causal)
        return x

    def init_state(self) -> dict:
        layers = len(self.conformer_layers)
        return {"cache": [None] * layers, "history": [None] * layers}

    def stream(self, x: torch.Tensor, state: dict, keep: Optional[int] = None) -> torch.Tensor:
        """One chunk x (1, T, D) -> (1, T, D): attends to the cached frames of earlier chunks (at most `keep` of them;
        None: all) and itself, with causal convolutions; `state` (from `init_state`) is updated in place."""
        for i, layer in enumerate(self.conformer_layers):
            x, kv, state["history"][i] = layer(x, None, True, state["cache"][i], state["history"][i])
            cache = kv if state["cache"][i] is None else torch.cat([state["cache"][i], kv], dim=3)
            state["cache"][i] = cache if keep is None else cache[:, :, :, max(0, cache.shape[3] - keep):]
        return x
