"""The streaming export (asr_poc/export_streaming.py): a streaming whisper-ctc's chunk step as ONNX with explicit
state in and out gives the torch stream's per-chunk log-probs and transcripts, int8 runs, bad chunks are refused.

A tiny random Whisper encoder (2 layers, 64 wide) with a scaled-up CTC head (clear argmaxes) keeps it fast."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from asr_poc.export import ExportError, read_metadata  # noqa: E402
from asr_poc.export_streaming import (OnnxStreamingCTCModel, export_streaming_onnx, initial_state,  # noqa: E402
                                      main, stream_log_probs)
from asr_poc.inference import Transcriber  # noqa: E402
from asr_poc.text import CharTokenizer  # noqa: E402

VOCAB = CharTokenizer.from_texts(["the quick brown fox jumps over the lazy dog's back"]).vocab
PUSH = 2560  # 160 ms at 16 kHz


def tiny_streaming_whisper_ctc(left_chunks=None, head_layers=1):
    from asr_poc.plugins import get_model_class

    torch.manual_seed(0)
    arch = {"streaming_chunk_ms": 160, "left_chunks": left_chunks, "head_layers": head_layers}
    model = get_model_class("whisper-ctc")({"model": "whisper-ctc", "features": {}, "arch": arch, "vocab": VOCAB,
                                            "extra": {"encoder_dims": {"n_mels": 80, "width": 64, "heads": 2,
                                                                       "layers": 2}}}).eval()
    with torch.no_grad():
        model.head.weight.mul_(30.0)
    return model


def held_out_audio(n: int = 3) -> list[np.ndarray]:
    from asr_poc.audio import load_audio

    wavs = sorted((Path(__file__).parents[1] / "asr_poc" / "data" / "real_check" / "wavs").glob("*.wav"))[:n]
    return [load_audio(w, 16000) for w in wavs]


def pushes(audio: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, start, i = [], 0, 0
    while start < len(audio):
        out.append(audio[start : start + sizes[i % len(sizes)]])
        start, i = start + sizes[i % len(sizes)], i + 1
    return out


def export_checkpoint(model, folder: Path) -> tuple:
    """`model` saved as folder/best.pt and exported with `python -m asr_poc.export_streaming CHECKPOINT`."""
    model.save_checkpoint(folder / "best.pt")
    assert main([str(folder / "best.pt")]) == 0
    return model, folder


def written_files(folder: Path) -> tuple:
    """The export wrote its files and left no temporary one: the fp32 file's proto and its metadata props."""
    import onnx

    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "model-streaming.int8.onnx", "model-streaming.onnx",
                                                        "tokens.txt"]
    proto = onnx.load(str(folder / "model-streaming.onnx"))
    return proto, {p.key: p.value for p in proto.metadata_props}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint (left_chunks 2) exported with `python -m asr_poc.export_streaming CHECKPOINT`."""
    return export_checkpoint(tiny_streaming_whisper_ctc(left_chunks=2), tmp_path_factory.mktemp("run"))


def test_export_writes_the_files_with_sherpa_style_metadata(exported):
    import onnx

    model, folder = exported
    proto, props = written_files(folder)
    assert props["model_type"] == "whisper-ctc-streaming" and props["chunk_size"] == "8" and props["T"] == "17"
    assert props["decode_chunk_len"] == "16" and props["left_chunks"] == "2" and props["left_context_len"] == "16"
    assert props["vocab_size"] == str(len(VOCAB)) and props["num_layers"] == "3"  # 2 encoder layers + 1 head layer
    names = [i.name for i in proto.graph.input]
    assert names[:6] == ["x", "num_mel_frames", "position", "cached_len", "cached_mel", "cached_conv1"]
    assert names[6:] == [f"cached_{k}_{i}" for i in range(3) for k in ("key", "value")]
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert shapes["x"] == [1, 17, 80] and shapes["cached_key_0"] == [1, 2, 16, 32]  # fixed shapes
    assert [o.name for o in proto.graph.output][:2] == ["log_probs", "num_frames"]
    assert read_metadata(folder / "model-streaming.int8.onnx")["quantized"]
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(folder / "model-streaming.int8.onnx")).graph.node}
    tokens = (folder / "tokens.txt").read_text().splitlines()
    assert tokens[0] == "<pad> 0" and len(tokens) == len(VOCAB)


@pytest.mark.parametrize("left_chunks", [2, None])
def test_the_onnx_stream_gives_the_torch_streams_log_probs_and_texts(exported, tmp_path, left_chunks):
    if left_chunks == 2:
        model, path = exported[0], exported[1] / "model-streaming.onnx"
    else:  # attention to the whole past: a fixed cache of 30 s
        model = tiny_streaming_whisper_ctc(left_chunks=None, head_layers=0)
        path = export_streaming_onnx(model, tmp_path / "unbounded.onnx")
        assert read_metadata(path)["layout"]["cache_frames"] == 1500
    onnx_model = OnnxStreamingCTCModel(path, threads=1)
    eager, runtime = Transcriber(model), Transcriber.from_checkpoint(path)
    assert isinstance(runtime.model, OnnxStreamingCTCModel) and runtime.model.streaming
    worst = 0.0
    for audio in held_out_audio():
        for sizes in ([PUSH], [1000, 4099, 17]):
            ref = stream_log_probs(model, torch.from_numpy(audio), sizes[0])
            got = onnx_model.stream_log_probs(audio, sizes[0])
            assert got.shape == ref.shape and ref.shape[0] == (len(audio) // 160 - 1) // 2 + 1
            worst = max(worst, float((got - ref).abs().max()))
            want = [r.text for r in eager.stream(pushes(audio, sizes))]
            have = [r.text for r in runtime.stream(pushes(audio, sizes))]
            assert have == want  # every partial text and the final one
        assert want[-1] and runtime.transcribe(audio).text == want[-1]
    print(f"left_chunks={left_chunks}: max abs difference of the per-chunk log-probs, ONNX vs torch: {worst:.2e}")
    assert worst < 1e-3


def test_int8_streams_and_its_transcripts_are_compared(exported):
    from asr_poc.evaluation import error_rates

    model, folder = exported
    eager, int8 = Transcriber(model), Transcriber.from_checkpoint(folder / "model-streaming.int8.onnx")
    assert "int8" in int8.model.name
    want, have, agree = [], [], []
    for audio in held_out_audio():
        want.append([r.text for r in eager.stream(pushes(audio, [PUSH]))][-1])
        have.append([r.text for r in int8.stream(pushes(audio, [PUSH]))][-1])
        ref = stream_log_probs(model, torch.from_numpy(audio), PUSH)
        agree.append(float((int8.model.stream_log_probs(audio, PUSH).argmax(-1) == ref.argmax(-1)).float().mean()))
    changed = sum(a != b for a, b in zip(want, have))
    cer = error_rates(want, have)["cer"]
    print(f"int8: {changed} of {len(want)} transcripts differ from torch's, CER vs torch {cer:.3f}, "
          f"frame argmax agreement {min(agree):.3f}..{max(agree):.3f}")
    assert min(agree) > 0.9 and cer < 0.1


def refuses_bad_chunks(runner, state: dict) -> None:
    """A runner refuses, by name, an x of another shape and a chunk without a valid frame."""
    window = runner.layout["window"]
    with pytest.raises(ValueError, match=rf"x of shape \(1, {window}, 80\).*got \(1, {window - 1}, 80\)"):
        runner.run_chunk(np.zeros((1, window - 1, 80), np.float32), window - 1, state)
    with pytest.raises(ValueError, match=f"{runner.count_input} must be 1..{window}"):
        runner.run_chunk(np.zeros((1, window, 80), np.float32), 0, state)


def test_bad_chunks_and_files_are_refused_with_a_clear_error(exported, tmp_path):
    model, folder = exported
    runner = OnnxStreamingCTCModel(folder / "model-streaming.onnx")
    state = initial_state(runner.layout)
    assert runner.layout["window"] == 17 and runner.count_input == "num_mel_frames"
    refuses_bad_chunks(runner, state)
    with pytest.raises(Exception, match="x"):  # onnxruntime itself names the input and its dimensions
        runner.session.run(None, {"x": np.zeros((1, 16, 80), np.float32), "num_mel_frames": np.array([16]), **state})
    log_probs, next_state = runner.run_chunk(np.zeros((1, 17, 80), np.float32), 17, state)
    assert log_probs.shape == (8, len(VOCAB)) and int(next_state["position"][0]) == 8
    assert int(next_state["cached_len"][0]) == 8
    with pytest.raises(ExportError, match="streaming whisper-ctc"):  # a model that does not stream
        export_streaming_onnx(type(model)({**model.spec.to_dict(), "arch": {}}), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    assert main([str(tmp_path / "missing.pt")]) == 1


def test_the_command_line_exports_a_streaming_run_and_refuses_a_full_context_one(exported, tmp_path, capsys):
    from asr_poc.cli import main as asr_poc

    model, folder = exported
    assert asr_poc(["export", str(folder / "best.pt"), "--streaming", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model-streaming.onnx").is_file() and (tmp_path / "out" / "tokens.txt").is_file()
    texts = [Transcriber.from_checkpoint(tmp_path / "out" / "model-streaming.onnx").transcribe(a).text
             for a in held_out_audio(1)]
    assert texts == [Transcriber(model).transcribe(a).text for a in held_out_audio(1)]
    full_context = type(model)({**model.spec.to_dict(), "arch": {}})
    full_context.save_checkpoint(tmp_path / "full.pt")
    capsys.readouterr()
    assert asr_poc(["export", str(tmp_path / "full.pt"), "--streaming", "--out", str(tmp_path / "no")]) == 1
    assert "streaming whisper-ctc" in capsys.readouterr().err and not (tmp_path / "no" / "model-streaming.onnx").exists()
