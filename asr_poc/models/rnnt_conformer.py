"""The conformer encoder of the transducer (`models.rnn-t.encoder: conformer`): the streaming conformer's encoder.

Convolutional subsampling (4x: 40 ms frames), `streaming.ConformerEncoder` with a chunked attention mask and causal
depthwise convolutions (as the streaming Conformer-CTC), then a projection to the joiner's width. `joiner_stride`
stacks that many encoder frames into one joiner frame first (2: 80 ms), as FastConformer's 8x transducers run:
the joint step's (B, T, U + 1, vocab) tensor, most of a transducer step's cost, shrinks as much, while the CTC
head still reads the 40-ms frames. With dynamic chunk
training each batch draws its chunk (full context half the time, else 1-25 frames), so one model decodes with full
context (`forward(chunk=None)`) and streams (`stream`, chunk by chunk with cached attention keys and values), as
WeNet's U2 and icefall's streaming transducers do. Measured against the Emformer encoder in benchmarks/README.md,
"A transducer that learns in minutes".
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .conformer import ConformerCTC, ConvSubsampling
from .streaming import ConformerEncoder

SUBSAMPLING = 4


class ConformerTranscriber(nn.Module):
    """Log-mel frames (B, T, F) -> encoder frames (B, T/4, output_dim); streams chunk by chunk."""

    def __init__(self, input_dim: int, encoder_dim: int, output_dim: int, num_heads: int, ffn_dim: int,
                 num_layers: int, kernel_size: int, subsampling_channels: int, dropout: float, chunk_frames: int,
                 left_chunks: Optional[int], dynamic_chunks: bool = True, joiner_stride: int = 1):
        super().__init__()
        if chunk_frames % joiner_stride:
            raise ValueError(f"a streaming chunk ({chunk_frames} encoder frames) must hold whole joiner frames "
                             f"(joiner_stride {joiner_stride})")
        self.subsampling = ConvSubsampling(input_dim, encoder_dim, SUBSAMPLING, subsampling_channels)
        self.encoder = ConformerEncoder(encoder_dim, num_heads, ffn_dim, num_layers, kernel_size, dropout)
        self.output = nn.Linear(encoder_dim * joiner_stride, output_dim)
        self.encoder_dim, self.joiner_stride = encoder_dim, joiner_stride
        self.num_heads, self.chunk_frames, self.left_chunks = num_heads, chunk_frames, left_chunks
        self.dynamic_chunks = dynamic_chunks

    # a training batch's chunk: dynamic (full context half the time, else 1-25 frames) or the streaming one,
    # the same rule as the streaming conformer-CTC (reads `dynamic_chunks` and `chunk_frames`)
    training_chunk = ConformerCTC.training_chunk

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, chunk: Optional[int] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole utterances; `chunk` (encoder frames) limits attention as streaming does, None is full context.
        The convolutions are causal either way, so that the streamed frames equal these."""
        x, x_lengths = self.hidden(feats, lengths, chunk)
        return self.project(x, x_lengths)

    def hidden(self, feats: torch.Tensor, lengths: torch.Tensor, chunk: Optional[int] = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` without the projection to the joiner's width: (B, T/4, encoder_dim) and lengths."""
        x, x_lengths = self.subsampling(feats, lengths)
        x_lengths = x_lengths.clamp(max=x.shape[1])
        return self.encoder(x, x_lengths, chunk, self.left_chunks, causal=True), x_lengths

    def project(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames (B, T, encoder_dim) -> joiner frames (B, ceil(T / joiner_stride), output_dim) and their
        lengths. Frames past each length are zeroed before stacking, so a padded batch gives each utterance the
        frames it gets alone (and streamed: the last partial group is zero-padded the same way)."""
        k = self.joiner_stride
        if k == 1:
            return self.output(hidden), lengths
        frames = hidden.shape[1]
        valid = torch.arange(frames, device=hidden.device)[None, :] < lengths[:, None]
        hidden = F.pad(hidden * valid.unsqueeze(-1).to(hidden.dtype), (0, 0, 0, -frames % k))
        stacked = hidden.reshape(hidden.shape[0], hidden.shape[1] // k, k * hidden.shape[2])
        return self.output(stacked), torch.div(lengths + k - 1, k, rounding_mode="floor")

    def init_state(self) -> dict:
        return {"subsampling": [None] * self.subsampling.layers, "frames": None, "encoder": self.encoder.init_state()}

    def stream(self, feats: torch.Tensor, state: dict, final: bool = False) -> torch.Tensor:
        """New log-mel frames (T, F) -> the joiner frames (T', output_dim) of every chunk they complete (at `final`,
        also of the last partial chunk); the same frames `forward(chunk=chunk_frames)` gives for the whole audio."""
        hidden = self.stream_hidden(feats, state, final)
        if not len(hidden):
            return feats.new_zeros(0, self.output.out_features)
        # whole chunks hold whole joiner frames (chunk_frames % joiner_stride == 0); `project` zero-pads the last one
        return self.project(hidden[None], torch.tensor([len(hidden)], device=hidden.device))[0][0]

    def stream_hidden(self, feats: torch.Tensor, state: dict, final: bool = False) -> torch.Tensor:
        """`stream` before the projection to the joiner: the encoder frames (T', encoder_dim)."""
        x = self.subsampling.stream(feats.unsqueeze(0), state["subsampling"], final)
        frames = x if state["frames"] is None else torch.cat([state["frames"], x], dim=1)
        keep = None if self.left_chunks is None else self.left_chunks * self.chunk_frames
        out = []
        while frames.shape[1] >= self.chunk_frames or (final and frames.shape[1] > 0):
            chunk, frames = frames[:, : self.chunk_frames], frames[:, self.chunk_frames :]
            out.append(self.encoder.stream(chunk, state["encoder"], keep)[0])
        state["frames"] = frames
        return torch.cat(out) if out else feats.new_zeros(0, self.encoder_dim)
