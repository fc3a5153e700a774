"""On-the-fly augmentation of training waveforms, so that synthetic speech sounds more like people at microphones.

`AugmentConfig` (the `datasets.<name>.augment` section) gives each effect a probability; `Augmenter` applies them
in a fixed order to one waveform in the dataset's `__getitem__` (in DataLoader workers when num_workers > 0), for
the train split only:

    speed      Kaldi-style speed perturbation (resampling: tempo, pitch and formants together), 0.9-1.1
    pitch      pitch shift of +-2 semitones at constant tempo (torchaudio's phase vocoder)
    reverb     convolution with a room impulse response from a bank of simulated rooms (pyroomacoustics,
               computed once per process, cached on disk)
    babble     2-5 other training utterances mixed underneath, 5-20 dB below
    noise      white, pink or brown noise at 5-30 dB SNR
    band_limit a random high-pass (50-300 Hz) and low-pass (3-7.5 kHz): cheap microphones, laptop speakers
    telephone  300-3400 Hz, G.711 mu-law
    codec      MP3 or Opus at a low bit rate through FFmpeg (torchcodec)
    gain       -15..+6 dB

`ramp_utterances` (default 0: off) raises every probability linearly from 0 to its value over the first that many
training utterances: a model that has not yet learnt the clean voices learns faster without the effects
(benchmarks/README.md, "Augmentation: a ramp").

Randomness comes from torch's generator (seeded per DataLoader worker), so a seeded run is reproducible.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
import torchaudio.functional as AF
from pydantic import BaseModel, ConfigDict, Field, field_validator

Probability = Field(0.0, ge=0.0, le=1.0)


class AugmentConfig(BaseModel):
    """Probability of each effect per training utterance (0 = never), and their ranges."""

    model_config = ConfigDict(extra="forbid")
    speed: float = Probability
    pitch: float = Probability
    reverb: float = Probability
    babble: float = Probability
    noise: float = Probability
    band_limit: float = Probability
    telephone: float = Probability
    codec: float = Probability
    gain: float = Probability
    speed_range: list[float] = [0.9, 1.1]
    pitch_semitones: float = Field(2.0, ge=0.0, le=12.0)
    snr_db: list[float] = [5.0, 30.0]
    babble_snr_db: list[float] = [5.0, 20.0]
    gain_db: list[float] = [-15.0, 6.0]
    rooms: int = Field(64, ge=1, le=4096)  # simulated room impulse responses in the bank
    ramp_utterances: int = Field(0, ge=0)  # probabilities rise from 0 over this many training utterances (0: off)

    @field_validator("speed_range", "snr_db", "babble_snr_db", "gain_db")
    @classmethod
    def _low_high(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError("must be [low, high] with low <= high")
        return value

    @field_validator("speed_range")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not 0.5 <= value[0] <= value[1] <= 2.0:
            raise ValueError("speed factors must lie in 0.5..2.0")
        return value

    def active(self) -> bool:
        return any(getattr(self, k) > 0 for k in EFFECTS)


EFFECTS = ("speed", "pitch", "reverb", "babble", "noise", "band_limit", "telephone", "codec", "gain")


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _choice(n: int) -> int:
    return int(torch.randint(0, n, ()))


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt()) if x.numel() else 0.0


def mix_at_snr(speech: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """`speech` plus `noise` (tiled or cut to its length) scaled to `snr_db` below the speech's power."""
    if noise.numel() == 0 or _rms(noise) == 0.0:
        return speech
    if noise.numel() < speech.numel():
        noise = noise.repeat(speech.numel() // noise.numel() + 1)
    noise = noise[: speech.numel()]
    scale = _rms(speech) / (_rms(noise) * 10 ** (snr_db / 20))
    return speech + scale * noise


def _fft_size(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()  # a power of two: FFTs of prime lengths are many times slower


def coloured_noise(n: int, colour: str) -> torch.Tensor:
    """White, pink (1/f) or brown (1/f^2) noise of `n` samples, shaped in the frequency domain."""
    white = torch.randn(n)
    if colour == "white":
        return white
    size = _fft_size(n)
    spectrum = torch.fft.rfft(torch.randn(size))
    f = torch.arange(spectrum.numel(), dtype=torch.float32).clamp_min(1.0)
    spectrum = spectrum / (f.sqrt() if colour == "pink" else f)
    return torch.fft.irfft(spectrum, size)[:n]


def fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """`x` convolved with `h` along the last axis, cut to the length of `x` (power-of-two FFT; rows of a batch
    with rows of `h`)."""
    size = _fft_size(x.shape[-1] + h.shape[-1] - 1)
    return torch.fft.irfft(torch.fft.rfft(x, size) * torch.fft.rfft(h, size), size)[..., : x.shape[-1]]


def band_pass(x: torch.Tensor, sample_rate: int, low_hz: Union[float, torch.Tensor],
              high_hz: Union[float, torch.Tensor], slope_hz: float = 150.0) -> torch.Tensor:
    """Keep `low_hz`..`high_hz`, with raised-cosine edges `slope_hz` wide (zero-phase, in the frequency domain),
    along the last axis; for a batch (B, T), `low_hz` and `high_hz` may be (B, 1) tensors: a band per row."""
    size = _fft_size(x.shape[-1])
    spectrum = torch.fft.rfft(x, size)
    f = torch.linspace(0, sample_rate / 2, spectrum.shape[-1], device=x.device)
    rise = ((f - (low_hz - slope_hz)) / slope_hz).clamp(0, 1)
    fall = (((high_hz + slope_hz) - f) / slope_hz).clamp(0, 1)
    mask = 0.5 - 0.5 * torch.cos(torch.pi * rise * fall)
    return torch.fft.irfft(spectrum * mask, size)[..., : x.shape[-1]]


def room_impulse_responses(count: int, sample_rate: int, seed: int = 0) -> list[np.ndarray]:
    """`count` impulse responses of random shoebox rooms (3-10 m, RT60 0.15-0.9 s), by pyroomacoustics' image
    method; cached in the temporary folder, so each process after the first loads them."""
    key = hashlib.md5(f"rir-v1-{count}-{sample_rate}-{seed}".encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"asr-poc-rirs-{key}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as bank:
                return [bank[f"r{i}"] for i in range(count)]
        except Exception:  # a damaged cache is rebuilt
            pass
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    while len(rirs) < count:
        dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
        rt60 = rng.uniform(0.15, 0.9)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # this room cannot reach that RT60
            continue
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 12))
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        start = int(np.argmax(np.abs(rir)))
        rir = rir[max(0, start - 16): start + int(0.6 * sample_rate)]  # direct path at the front, tail cut
        rirs.append(rir / (np.abs(rir).max() + 1e-9))
    tmp = cache.with_name(f".{cache.name}.{np.random.randint(1 << 30)}.tmp.npz")
    np.savez(tmp, **{f"r{i}": r for i, r in enumerate(rirs)})
    tmp.replace(cache)
    return rirs


class Augmenter:
    """Applies the effects of an `AugmentConfig` to one waveform (1-D float tensor at `sample_rate`).

    `other_utterance()`, if given, returns a random other waveform of the same data set (for babble).
    """

    def __init__(self, config: AugmentConfig, sample_rate: int,
                 other_utterance: Optional[Callable[[], torch.Tensor]] = None):
        self.config = config
        self.sample_rate = sample_rate
        self.other_utterance = other_utterance
        self._rirs: Optional[list[torch.Tensor]] = None
        self._seen_before = 0  # utterances this process trained on before the current DataLoader
        self._served = 0       # utterances augmented since then, by this process or DataLoader worker

    def start_at(self, utterances_seen: int) -> None:
        """Tell the ramp how many training utterances came before the next DataLoader (set in the main process;
        workers copy it when the loader starts them)."""
        self._seen_before, self._served = int(utterances_seen), 0

    def strength(self) -> float:
        """The factor (0..1) on every probability: 1 without a ramp, else the share of the ramp done."""
        ramp = self.config.ramp_utterances
        if ramp <= 0:
            return 1.0
        worker = torch.utils.data.get_worker_info()
        served = self._served * (worker.num_workers if worker is not None else 1)  # workers take turns
        return min(1.0, (self._seen_before + served) / ramp)

    def _happens(self, effect: str, strength: float = 1.0) -> bool:
        p = getattr(self.config, effect) * strength
        return p > 0 and float(torch.rand(())) < p

    def rirs(self) -> list[torch.Tensor]:
        if self._rirs is None:
            self._rirs = [torch.from_numpy(r) for r in room_impulse_responses(self.config.rooms, self.sample_rate)]
        return self._rirs

    def speed(self, x: torch.Tensor) -> torch.Tensor:
        factor = round(_uniform(*self.config.speed_range), 2)
        if factor == 1.0:
            return x
        return AF.resample(x, int(self.sample_rate * factor), self.sample_rate)  # 1.1 -> 10 % shorter

    def pitch(self, x: torch.Tensor) -> torch.Tensor:
        """Stretch time by the pitch ratio (phase vocoder), then resample back to the length: pitch moves, tempo
        stays. (torchaudio's `pitch_shift` resamples at exact ratios and takes seconds per utterance.)"""
        ratio = round(2 ** (_uniform(-self.config.pitch_semitones, self.config.pitch_semitones) / 12), 2)
        if ratio == 1.0:
            return x
        n_fft, hop = 512, 128
        window = torch.hann_window(n_fft)
        spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
        advance = torch.linspace(0, torch.pi * hop, spec.shape[0])[:, None]
        stretched = AF.phase_vocoder(spec, 1.0 / ratio, advance)
        y = torch.istft(stretched, n_fft, hop, window=window)
        return AF.resample(y, int(self.sample_rate * ratio), self.sample_rate)[: x.numel()]

    def reverb(self, x: torch.Tensor) -> torch.Tensor:
        rirs = self.rirs()
        wet = fft_convolve(x, rirs[_choice(len(rirs))])
        return wet * (_rms(x) / max(_rms(wet), 1e-9))

    def babble(self, x: torch.Tensor) -> torch.Tensor:
        if self.other_utterance is None:
            return x
        crowd = torch.zeros_like(x)
        for _ in range(2 + _choice(4)):
            other = self.other_utterance()
            if other.numel() == 0:
                continue
            offset = _choice(max(1, x.numel()))
            other = torch.roll(other.repeat(x.numel() // other.numel() + 1)[: x.numel()], offset)
            crowd += other / max(_rms(other), 1e-9)
        return mix_at_snr(x, crowd, _uniform(*self.config.babble_snr_db))

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        colour = ("white", "pink", "brown")[_choice(3)]
        return mix_at_snr(x, coloured_noise(x.numel(), colour), _uniform(*self.config.snr_db))

    def band_limit(self, x: torch.Tensor) -> torch.Tensor:
        return band_pass(x, self.sample_rate, _uniform(50, 300), min(_uniform(3000, 7500), self.sample_rate * 0.45))

    def telephone(self, x: torch.Tensor) -> torch.Tensor:
        """The 300-3400 Hz band, quantised with G.711 mu-law (8 bits)."""
        narrow = band_pass(x, self.sample_rate, 300.0, 3400.0, slope_hz=100.0)
        peak = max(float(narrow.abs().max()), 1e-9)
        return AF.mu_law_decoding(AF.mu_law_encoding(narrow / peak, 256), 256) * peak

    def codec(self, x: torch.Tensor) -> torch.Tensor:
        from torchcodec.decoders import AudioDecoder
        from torchcodec.encoders import AudioEncoder

        fmt, rate = (("mp3", 16000), ("opus", 16000))[_choice(2)]
        bit_rate = (16000, 24000, 32000)[_choice(3)]
        try:
            data = AudioEncoder(x.clamp(-1, 1).unsqueeze(0), sample_rate=self.sample_rate).to_tensor(
                fmt, bit_rate=bit_rate, sample_rate=48000 if fmt == "opus" else rate)
            decoded = AudioDecoder(data, sample_rate=self.sample_rate).get_all_samples().data.mean(0)
        except Exception:  # an FFmpeg without that encoder: leave the audio as it is
            return x
        out = torch.zeros_like(x)
        n = min(out.numel(), decoded.numel())
        out[:n] = decoded[:n]
        return out

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        return x * 10 ** (_uniform(*self.config.gain_db) / 20)

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform.float()
        strength = self.strength()
        self._served += 1
        for effect in EFFECTS:
            if self._happens(effect, strength):
                x = getattr(self, effect)(x)
        return x.clamp(-1.0, 1.0).contiguous()
