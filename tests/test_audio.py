"""Every kind of bad audio is refused with a clear one-line error; odd but valid audio is converted."""
import io

import numpy as np
import pytest
import soundfile as sf

from asr_poc.audio import AudioError, load_audio
from asr_poc.models.features import FeatureSpec, LogMel


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

    frontend = LogMel(FeatureSpec(), spec_augment=True)
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


def long_silence(tmp_path, seconds: float, fmt: str, rate: int = 16000):
    """A file of `seconds` of silence in `fmt`, written in blocks (small on disk: silence compresses well)."""
    path = tmp_path / f"silence.{fmt.lower()}"
    with sf.SoundFile(path, "w", rate, 1, format=fmt, subtype="PCM_16") as f:
        block = np.zeros(rate * 60, np.int16)
        for _ in range(int(seconds // 60)):
            f.write(block)
    return path


def test_a_one_hour_flac_is_refused_from_its_header_without_decoding(tmp_path):
    import time
    import tracemalloc

    path = long_silence(tmp_path, 3600, "FLAC")
    assert path.stat().st_size < 5_000_000, "a small file that would decode to 230 MB of float32"
    for source in (path, path.read_bytes()):
        tracemalloc.start()
        start = time.perf_counter()
        with pytest.raises(AudioError, match=r"audio is 3600.0 s long; the limit is 120 s"):
            load_audio(source, 16000, max_seconds=120)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < 1.0, f"refused from the header, not decoded ({elapsed:.2f} s)"
        assert peak < 2 * path.stat().st_size + 1_000_000, f"nothing decoded ({peak / 1e6:.1f} MB allocated)"


@pytest.fixture(scope="module")
def long_opus(tmp_path_factory):
    """Five minutes of Opus silence in WebM (a browser recording: no duration in the header) and in Ogg."""
    import shutil
    import subprocess

    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed")
    folder = tmp_path_factory.mktemp("opus")
    for container in ("webm", "ogg"):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "300",
                        "-c:a", "libopus", "-b:a", "8k", str(folder / f"long.{container}")], check=True)
    return folder


@pytest.mark.parametrize("container", ["webm", "ogg"])
def test_an_over_long_opus_file_is_refused_before_decoding(long_opus, container):
    from torchcodec.decoders import AudioDecoder

    data = (long_opus / f"long.{container}").read_bytes()
    if container == "webm":
        assert AudioDecoder(data).metadata.duration_seconds_from_header is None, "no length in the header"
    with pytest.raises(AudioError, match=r"audio is 300.0 s long; the limit is 10 s"):
        load_audio(data, 16000, max_seconds=10)


def test_a_stream_of_unknown_length_is_decoded_only_up_to_the_limit(long_opus, monkeypatch):
    """When neither the header nor the demuxer tells the length, decoding stops just past the limit."""
    import torchcodec.decoders

    decoded: list[int] = []

    class UnknownLength(torchcodec.decoders.AudioDecoder):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.metadata.duration_seconds = self.metadata.duration_seconds_from_header = None

        def get_all_samples(self):
            raise AssertionError("the whole stream must not be decoded")

        def get_samples_played_in_range(self, *args, **kwargs):
            samples = super().get_samples_played_in_range(*args, **kwargs)
            decoded.append(samples.data.shape[1])
            return samples

    monkeypatch.setattr(torchcodec.decoders, "AudioDecoder", UnknownLength)
    with pytest.raises(AudioError, match=r"audio is over 10.5 s long \(decoding stopped there\); the limit is 10 s"):
        load_audio((long_opus / "long.webm").read_bytes(), 16000, max_seconds=10)
    assert decoded and max(decoded) <= 10.5 * 48000 + 960, "memory bounded by the limit, not by the file"


def test_audio_at_the_limit_is_accepted(tmp_path):
    path = tmp_path / "two.flac"
    sf.write(path, tone(16000, 2.0), 16000, format="FLAC")
    assert len(load_audio(path, 16000, max_seconds=2)) == 32000
