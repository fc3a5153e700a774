"""ONNX export: the exported graph computes the eager model's logits, int8 runs, streaming models export."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from asr_poc.export import ExportError, OnnxCTCModel, export_onnx, read_metadata  # noqa: E402
from asr_poc.text import CharTokenizer  # noqa: E402

VOCAB = CharTokenizer.from_texts(["the quick brown fox jumps over the lazy dog's back"]).vocab
TINY = {"encoder_dim": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 64, "kernel_size": 3}


def confident_model(**extra):
    """A tiny untrained conformer whose CTC head is scaled up: clear argmaxes, so a transcript is well defined."""
    from asr_poc.plugins import get_model_class

    torch.manual_seed(0)
    model = get_model_class("conformer")({"vocab": VOCAB, **TINY, **extra}).eval()
    with torch.no_grad():
        model.head.weight.mul_(30.0)
    return model


def close(got: torch.Tensor, ref: torch.Tensor) -> bool:
    """Equal up to float32 rounding: within 1e-3 of the logits' scale (onnxruntime's STFT sums in another order, and
    log10 of the mel energy of near-silent frames magnifies that; measured: 1.4e-4 of the scale)."""
    return got.shape == ref.shape and float((got - ref).abs().max()) <= 1e-3 * float(ref.abs().max())


def held_out_audio(n: int = 4) -> list[np.ndarray]:
    """Real recordings shipped in the package (no model here has heard them), at 16 kHz."""
    from asr_poc.audio import load_audio

    wavs = sorted((Path(__file__).parents[1] / "asr_poc" / "data" / "real_check" / "wavs").glob("*.wav"))[:n]
    return [load_audio(w, 16000) for w in wavs]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny model saved as a checkpoint and exported with `asr-poc export CHECKPOINT --int8`."""
    from asr_poc.cli import main

    folder = tmp_path_factory.mktemp("run")
    model = confident_model()
    model.save_checkpoint(folder / "best.pt")
    assert main(["export", str(folder / "best.pt"), "--format", "onnx", "--int8"]) == 0
    return model, folder


def test_export_writes_both_files_atomically_with_metadata(exported):
    _, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == ["best.int8.onnx", "best.onnx", "best.pt"]  # no temp files
    meta = read_metadata(folder / "best.onnx")
    assert meta["model_name"] == "conformer" and meta["config"]["vocab"] == VOCAB and not meta["quantized"]
    assert read_metadata(folder / "best.int8.onnx")["quantized"]
    assert (folder / "best.int8.onnx").stat().st_size < 0.9 * (folder / "best.onnx").stat().st_size
    import onnx

    from asr_poc.export import frontend_nodes, projection_node

    proto = onnx.load(str(folder / "best.int8.onnx"))
    int8 = {n.name: n.op_type for n in proto.graph.node}
    kept = frontend_nodes(folder / "best.int8.onnx")  # window, DFT basis (cos, sin), mel filter bank: float
    assert sorted(int8[name] for name in kept) == ["MatMul", "MatMul", "MatMul", "Mul"]
    assert int8[projection_node(proto)] == "MatMul"  # the final projection stays float
    assert "MatMulInteger" in int8.values()  # the encoder's linear layers are quantised ...
    assert "ConvInteger" not in int8.values()  # ... and its convolutions are not


def test_fp32_onnx_gives_the_eager_logits_and_transcripts_on_held_out_audio(exported):
    from asr_poc.inference import Transcriber

    model, folder = exported
    onnx_model = OnnxCTCModel(folder / "best.onnx")
    eager, runtime = Transcriber(model), Transcriber.from_checkpoint(folder / "best.onnx")
    for audio in held_out_audio():
        wav, n = torch.from_numpy(audio)[None], torch.tensor([len(audio)])
        with torch.no_grad():
            ref, ref_frames = model.encode(wav, n)
        got, frames = onnx_model.ctc_logits(wav, n)
        assert torch.equal(frames, ref_frames)
        assert close(got, ref), float((got - ref).abs().max())
        assert runtime.transcribe(audio, source_rate=16000).text == eager.transcribe(audio, source_rate=16000).text
    # a padded batch of different lengths: each row as alone
    audios = held_out_audio()[:3]
    lengths = torch.tensor([len(a) for a in audios])
    batch = torch.zeros(3, int(lengths.max()))
    for i, a in enumerate(audios):
        batch[i, : len(a)] = torch.from_numpy(a)
    assert onnx_model.transcribe(batch, lengths) == model.transcribe(batch, lengths)


def test_int8_runs_and_its_wer_difference_is_reported(exported):
    from asr_poc.bench.export import compare_backends

    model, folder = exported
    audio = held_out_audio(3)
    result = compare_backends(model, {"onnx": folder / "best.onnx", "int8": folder / "best.int8.onnx"}, audio,
                              references=None, rate=16000, repeats=1)
    rows = {r["backend"]: r for r in result["backends"]}
    assert set(rows) == {"eager", "onnx", "int8"}
    assert rows["onnx"]["wer_vs_eager"] == 0.0  # the same transcripts as eager
    assert 0.0 <= rows["int8"]["wer_vs_eager"] <= 2.0 and rows["int8"]["rtfx"] > 0
    assert rows["eager"]["speedup"] == 1.0 and rows["int8"]["speedup"] > 0
    assert "load_average" in result


def test_streaming_conformer_exports_with_full_context(tmp_path):
    model = confident_model(streaming_chunk_ms=160)
    assert model.streaming
    path = export_onnx(model, tmp_path / "stream.onnx")
    wav = torch.randn(2, 24000, generator=torch.Generator().manual_seed(3)) * 0.1
    n = torch.tensor([24000, 17000])
    with torch.no_grad():
        ref, ref_frames = model.encode(wav, n, chunk=None)
    got, frames = OnnxCTCModel(path).ctc_logits(wav, n)
    assert torch.equal(frames, ref_frames)
    for i, valid in enumerate(frames.tolist()):  # the frames past an utterance's end are padding, never decoded
        assert close(got[i, :valid], ref[i, :valid])


def test_export_errors_are_one_line(tmp_path):
    from asr_poc.cli import main

    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ExportError, match="not an ONNX file"):
        read_metadata(bad)
    assert main(["export", str(tmp_path / "missing-run")]) == 1


def test_an_export_that_computes_other_logits_is_refused(exported):
    from asr_poc.export import _check_export, _CTCGraph

    _, folder = exported
    other = confident_model()
    with torch.no_grad():
        other.head.bias.add_(5.0 * torch.randn(other.head.bias.shape))  # not the weights in the file
    with pytest.raises(ExportError, match="computes other logits"):
        _check_export(_CTCGraph(other).eval(), folder / "best.onnx", 16000)
    _check_export(_CTCGraph(exported[0]).eval(), folder / "best.onnx", 16000)  # the model it came from passes


def test_dft_frontend_matches_the_stft_front_ends():
    """The exported STFT (a convolution over a DFT basis) against torch.stft, in log-mel features.

    Measured max abs difference: power spectrum within 1e-6 of its peak; normalized log-mel features (values
    around -1.5..2) 3.8e-5 for the conformer's `LogMel` on held-out speech (log10 of the quietest bins magnifies
    float32 rounding), less for whisper's log-mel (floored 8 below the loudest bin)."""
    from asr_poc.models.stft_matmul import DFTPowerSpectrogram, dft_frontend
    from asr_poc.models.whisper_encoder import WhisperLogMel

    wav = torch.randn(2, 20800, generator=torch.Generator().manual_seed(4)) * 0.1
    wav[1, :16000] = torch.from_numpy(held_out_audio(1)[0][:16000])
    n = torch.tensor([20800, 15000])
    window = torch.hann_window(400)
    power = DFTPowerSpectrogram(400, 160, window)(wav)
    ref = torch.stft(wav, 400, 160, window=window, return_complex=True).abs() ** 2
    assert power.shape == ref.shape and float((power - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    model = confident_model()
    copy = dft_frontend(model)
    assert copy.frontend is not model.frontend and copy.encoder is model.encoder  # weights shared, original intact
    with torch.no_grad():
        (got, frames), (want, want_frames) = copy.frontend(wav, n), model.frontend(wav, n)
        assert torch.equal(frames, want_frames) and float((got - want).abs().max()) < 1e-4
        whisper = torch.nn.Module()
        whisper.log_mel = WhisperLogMel(80)
        (got, _), (want, _) = dft_frontend(whisper).log_mel(wav, n), whisper.log_mel(wav, n)
        assert float((got - want).abs().max()) < 1e-4
        whisper.log_mel = WhisperLogMel(80, causal=True)  # the running floor: a scan instead of cummax
        (got, _), (want, _) = dft_frontend(whisper).log_mel(wav, n), whisper.log_mel(wav, n)
        assert float((got - want).abs().max()) < 1e-4


def test_running_max_equals_cummax():
    from asr_poc.models.whisper_encoder import running_max

    x = torch.randn(3, 1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(running_max(x, 10), torch.cummax(x, -1).values)  # 2**10 >= 1000 values a row
    assert not torch.equal(running_max(x, 3), torch.cummax(x, -1).values)  # too few steps reach 8 back only


def tiny_whisper_ctc(arch: dict | None = None):
    from asr_poc.plugins import get_model_class

    torch.manual_seed(0)
    model = get_model_class("whisper-ctc")({"model": "whisper-ctc", "features": {}, "arch": arch or {}, "vocab": VOCAB,
                                            "extra": {"encoder_dims": {"n_mels": 80, "width": 64, "heads": 2,
                                                                       "layers": 1}}}).eval()
    with torch.no_grad():
        model.head.weight.mul_(30.0)
    return model


@pytest.mark.parametrize("arch", [{}, {"streaming_chunk_ms": 160, "left_chunks": 2}], ids=["full", "streaming"])
def test_whisper_ctc_exports_with_its_logits_and_transcripts(tmp_path, arch):
    """Full context, and a streaming student whole (chunked attention, the causal log-mel floor: its running
    maximum is a scan in the graph, which has no cummax)."""
    from asr_poc.export import quantize_int8

    model = tiny_whisper_ctc(arch)
    path = export_onnx(model, tmp_path / "w.onnx")
    onnx_model = OnnxCTCModel(path)
    audios = held_out_audio(3)
    for audio in audios:
        wav, n = torch.from_numpy(audio)[None], torch.tensor([len(audio)])
        with torch.no_grad():
            ref, ref_frames = model.encode(wav, n)
        got, frames = onnx_model.ctc_logits(wav, n)
        assert torch.equal(frames, ref_frames) and close(got, ref), float((got - ref).abs().max())
    lengths = torch.tensor([len(a) for a in audios])
    batch = torch.zeros(3, int(lengths.max()))
    for i, a in enumerate(audios):
        batch[i, : len(a)] = torch.from_numpy(a)
    assert onnx_model.transcribe(batch, lengths) == model.transcribe(batch, lengths)
    int8 = OnnxCTCModel(quantize_int8(path, tmp_path / "w.int8.onnx"))
    assert len(int8.transcribe(batch, lengths)) == 3
