"""Whisper's text decoder (openai/whisper `model.py`, `TextDecoder`) in plain torch, its pretrained weights read from
a CTranslate2 `model.bin`, and the two ways to decode with it: greedy and beam search, both with a key/value cache.

The decoder attends to its own tokens (causal) and to the encoder's frames; its output projection is the token
embedding transposed (tied weights). Decoding follows whisper's `DecodingTask` for English-only models without
timestamps: the prompt is `<|startoftranscript|><|notimestamps|>`, the model's `suppress_ids` are never emitted,
a blank or end-of-text is never the first token, and decoding stops at `<|endoftext|>` or `max_tokens`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .whisper_encoder import WeightsError

MAX_TOKENS = 448  # text positions the pretrained decoder has
DECODER_LAYER = re.compile(r"decoder/layer_(\d+)/")
Cache = list[dict[str, torch.Tensor]]  # per layer: self-attention keys/values so far, cross-attention keys/values


@dataclass(frozen=True)
class DecoderDims:
    vocab: int = 51864
    width: int = 384
    heads: int = 6
    layers: int = 4


class Attention(nn.Module):
    """Multi-head attention with a query, a key/value projection and an output projection (whisper's key has no
    bias: the pretrained key bias is zero)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.key_value(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
               causal: bool = False) -> torch.Tensor:
        q = self.split(self.query(x))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.out(y.transpose(1, 2).flatten(2))


class DecoderBlock(nn.Module):
    """Pre-norm: causal self-attention, cross-attention to the audio, a 4x GELU MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.self_ln, self.cross_ln, self.mlp_ln = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attn, self.cross_attn = Attention(width, heads), Attention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, audio: torch.Tensor, audio_mask: Optional[torch.Tensor],
                cache: Optional[dict] = None) -> torch.Tensor:
        h = self.self_ln(x)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:  # incremental: the new tokens attend to every earlier one (no mask needed)
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        x = x + self.self_attn.attend(h, k, v, causal=cache is None or k.shape[2] == x.shape[1])
        if cache is not None and "ck" in cache:
            ck, cv = cache["ck"], cache["cv"]
        else:
            ck, cv = self.cross_attn.keys_values(audio)
            if cache is not None:
                cache["ck"], cache["cv"] = ck, cv
        x = x + self.cross_attn.attend(self.cross_ln(x), ck, cv, mask=audio_mask)
        return x + self.mlp(self.mlp_ln(x))


class WhisperDecoder(nn.Module):
    """Token and position embeddings, decoder blocks, a norm; logits through the tied embedding."""

    def __init__(self, dims: DecoderDims):
        super().__init__()
        self.dims = dims
        self.embedding = nn.Embedding(dims.vocab, dims.width)
        self.positions = nn.Parameter(torch.zeros(MAX_TOKENS, dims.width))
        self.blocks = nn.ModuleList(DecoderBlock(dims.width, dims.heads) for _ in range(dims.layers))
        self.ln = nn.LayerNorm(dims.width)

    def forward(self, tokens: torch.Tensor, audio: torch.Tensor, audio_mask: Optional[torch.Tensor] = None,
                cache: Optional[Cache] = None, offset: int = 0) -> torch.Tensor:
        """Tokens (B, L) after `offset` earlier ones, audio frames (B, T, width) -> logits (B, L, vocab)."""
        x = self.embedding(tokens) + self.positions[offset : offset + tokens.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, audio, audio_mask, None if cache is None else cache[i])
        return self.ln(x) @ self.embedding.weight.T


def decoder_state_dict(variables: dict[str, np.ndarray]) -> tuple[DecoderDims, dict[str, torch.Tensor]]:
    """A CTranslate2 Whisper model's decoder as `WhisperDecoder` dimensions and state dict (float32)."""
    if "decoder/embeddings/weight" not in variables:
        raise WeightsError("not a Whisper model: no decoder/embeddings/weight")
    get = lambda name: torch.from_numpy(np.array(variables[f"decoder/{name}"], dtype=np.float32))  # noqa: E731
    layers = 1 + max(int(m.group(1)) for m in map(DECODER_LAYER.match, variables) if m)
    vocab, width = variables["decoder/embeddings/weight"].shape
    dims = DecoderDims(vocab=int(vocab), width=int(width), heads=int(variables["decoder/num_heads"].reshape(-1)[0]),
                       layers=layers)
    state = {"embedding.weight": get("embeddings/weight"), "positions": get("position_encodings/encodings"),
             "ln.weight": get("layer_norm/gamma"), "ln.bias": get("layer_norm/beta")}
    for i in range(layers):
        ct2, ours = f"layer_{i}/", f"blocks.{i}."
        parts = {"self_attention/layer_norm": "self_ln", "attention/layer_norm": "cross_ln", "ffn/layer_norm": "mlp_ln"}
        for part, name in parts.items():
            state[f"{ours}{name}.weight"], state[f"{ours}{name}.bias"] = get(ct2 + part + "/gamma"), get(ct2 + part + "/beta")
        w, b = get(ct2 + "self_attention/linear_0/weight"), get(ct2 + "self_attention/linear_0/bias")  # fused q, k, v
        state[ours + "self_attn.query.weight"], state[ours + "self_attn.query.bias"] = w[:width], b[:width]
        state[ours + "self_attn.key_value.weight"], state[ours + "self_attn.key_value.bias"] = w[width:], b[width:]
        linears = {"self_attention/linear_1": "self_attn.out", "attention/linear_0": "cross_attn.query",
                   "attention/linear_1": "cross_attn.key_value", "attention/linear_2": "cross_attn.out",
                   "ffn/linear_0": "mlp.0", "ffn/linear_1": "mlp.2"}
        for part, name in linears.items():
            state[f"{ours}{name}.weight"], state[f"{ours}{name}.bias"] = get(ct2 + part + "/weight"), get(ct2 + part + "/bias")
    return dims, state


# --- decoding ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    """The special tokens of one Whisper vocabulary that decoding needs."""

    start: Sequence[int]  # <|startoftranscript|> (+ language, task for multilingual models) + <|notimestamps|>
    end: int  # <|endoftext|>
    suppress: Sequence[int]  # never emitted (whisper's suppress_tokens, and every special token but the end)
    suppress_first: Sequence[int]  # never the first token (a blank, the end)


def _suppression(prompt: Prompt, vocab: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    always = torch.zeros(vocab, dtype=torch.bool, device=device)
    always[list(prompt.suppress)] = True
    first = always.clone()
    first[list(prompt.suppress_first)] = True
    return always, first


def greedy_decode(decoder: WhisperDecoder, audio: torch.Tensor, audio_mask: Optional[torch.Tensor], prompt: Prompt,
                  max_tokens: int = 128) -> list[list[int]]:
    """The most likely token at each step, for a batch of encoded audio (B, T, width); text tokens per item."""
    batch, device = audio.shape[0], audio.device
    always, first = _suppression(prompt, decoder.dims.vocab, device)
    cache: Cache = [{} for _ in decoder.blocks]
    tokens = torch.tensor([list(prompt.start)] * batch, device=device)
    out = torch.zeros(batch, 0, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    offset = 0
    limit = min(max_tokens, MAX_TOKENS - len(prompt.start))
    for step in range(limit):
        logits = decoder(tokens, audio, audio_mask, cache, offset)[:, -1].float()
        offset += tokens.shape[1]
        logits = logits.masked_fill(first if step == 0 else always, float("-inf"))
        nxt = logits.argmax(-1).masked_fill(done, prompt.end)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == prompt.end
        if bool(done.all()):
            break
        tokens = nxt[:, None]
    return [[t for t in row if t != prompt.end] for row in out.tolist()]


def beam_decode(decoder: WhisperDecoder, audio: torch.Tensor, audio_mask: Optional[torch.Tensor], prompt: Prompt,
                beam_size: int = 5, max_tokens: int = 128, length_penalty: Optional[float] = None) -> list[list[int]]:
    """Beam search per utterance (whisper's `BeamSearchDecoder`: `beam_size` hypotheses, finished ones ranked by
    log-probability / length, or whisper's length penalty when given); text tokens per item."""
    results = []
    for i in range(audio.shape[0]):
        mask = None if audio_mask is None else audio_mask[i : i + 1]
        results.append(_beam_one(decoder, audio[i : i + 1], mask, prompt, beam_size, max_tokens, length_penalty))
    return results


def _beam_one(decoder: WhisperDecoder, audio: torch.Tensor, mask: Optional[torch.Tensor], prompt: Prompt,
              beam_size: int, max_tokens: int, length_penalty: Optional[float]) -> list[int]:
    device = audio.device
    always, first = _suppression(prompt, decoder.dims.vocab, device)
    cache: Cache = [{} for _ in decoder.blocks]
    hyps: list[list[int]] = [[]]
    scores = torch.zeros(1, device=device)
    tokens = torch.tensor([list(prompt.start)], device=device)
    finished: list[tuple[float, list[int]]] = []
    offset = 0
    limit = min(max_tokens, MAX_TOKENS - len(prompt.start))
    for step in range(limit):
        rows = tokens.shape[0]
        logits = decoder(tokens, audio.expand(rows, -1, -1), None if mask is None else mask.expand(rows, -1, -1, -1),
                         cache, offset)[:, -1].float()
        offset += tokens.shape[1]
        logprobs = logits.masked_fill(first if step == 0 else always, float("-inf")).log_softmax(-1)
        total = (scores[:, None] + logprobs).flatten()
        best = total.topk(min(2 * beam_size, total.numel()))
        keep_rows, keep_tokens, keep_scores = [], [], []
        for score, index in zip(best.values.tolist(), best.indices.tolist()):
            row, token = divmod(index, logprobs.shape[1])
            if token == prompt.end:
                length = len(hyps[row])
                penalty = length if length_penalty is None else ((5 + length) / 6) ** length_penalty
                finished.append((score / max(penalty, 1), hyps[row]))
            else:
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(score)
            if len(keep_rows) == beam_size:
                break
        if len(finished) >= beam_size or not keep_rows:
            break
        index = torch.tensor(keep_rows, device=device)
        for layer in cache:
            layer["k"], layer["v"] = layer["k"][index], layer["v"][index]
            layer["ck"], layer["cv"] = layer["ck"][index], layer["cv"][index]
        hyps = [hyps[r] + [t] for r, t in zip(keep_rows, keep_tokens)]
        scores = torch.tensor(keep_scores, device=device)
        tokens = torch.tensor(keep_tokens, device=device)[:, None]
    if not finished:  # ran out of tokens: rank the open hypotheses the same way
        finished = [(s / max(len(h), 1), h) for s, h in zip(scores.tolist(), hyps)]
    return max(finished, key=lambda item: item[0])[1]
