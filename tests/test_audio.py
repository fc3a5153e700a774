"""Every kind of bad audio is refused with a clear one-line error; odd but valid audio is converted."""
import io

import numpy as np
import pytest
import soundfile as sf

from asr_poc.audio import AudioError, LogMel, FeatureConfig, load_audio


def tone(rate: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def wav_bytes(data, rate, subtype="PCM_16", fmt="WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("rate, channels, subtype", [(48000, 2, "PCM_16"), (8000, 1, "PCM_U8"), (22050, 1, "FLOAT"),
                                                     (44100, 2, "PCM_24")])
def test_odd_formats_are_converted(tmp_path, rate, channels, subtype):
    path = tmp_path / "x.wav"
    sf.write(path, tone(rate, 0.5, channels), rate, subtype=subtype)
    out = load_audio(path, 16000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 8000) <= 2
    assert 0.15 < np.abs(out).max() < 0.5


def test_flac_ogg_and_bytes(tmp_path):
    for fmt in ("FLAC", "OGG"):
        subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
        out = load_audio(wav_bytes(tone(16000), 16000, subtype=subtype, fmt=fmt), 16000)
        assert abs(len(out) - 8000) < 200


def test_webm_opus_from_a_browser_recorder_decodes_with_ffmpeg(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed")
    src, webm = tmp_path / "a.wav", tmp_path / "a.webm"
    sf.write(src, tone(48000, 1.0), 48000)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(src), "-c:a", "libopus", str(webm)], check=True)
    out = load_audio(webm.read_bytes(), 16000)
    assert abs(len(out) - 16000) < 1000


def test_int16_array_is_scaled():
    pcm = (tone(16000) * 32767).astype(np.int16)
    out = load_audio(pcm, 16000)
    assert 0.25 < np.abs(out).max() < 0.35


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(b"this is not audio at all" * 20), "not audio"),
    (lambda p: sf.write(p, np.zeros((0,), np.float32), 16000), "zero-length audio"),
    (lambda p: sf.write(p, np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN or infinite"),
    (lambda p: sf.write(p, tone(16000, 3.0), 16000), "3.0 s long; the limit is 2 s"),
])
def test_bad_audio_is_refused_with_one_line(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as info:
        load_audio(path, 16000, max_seconds=2)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_empty_bytes(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="empty audio"):
        load_audio(b"")


def test_log_mel_shapes_and_spec_augment_only_in_training():
    import torch

    frontend = LogMel(FeatureConfig(), spec_augment=True)
    wav = torch.randn(2, 16000) * 0.1
    frontend.eval()
    a, lengths = frontend(wav, torch.tensor([16000, 8000]))
    b, _ = frontend(wav, torch.tensor([16000, 8000]))
    assert a.shape == (2, 101, 80) and lengths.tolist() == [101, 51]
    assert torch.equal(a, b)
    frontend.train()
    torch.manual_seed(0)
    c, _ = frontend(wav, torch.tensor([16000, 8000]))
    assert not torch.equal(a, c)
