"""The streaming conformer export (asr_poc/export_streaming_conformer.py): a streaming conformer-CTC's chunk step as
ONNX with explicit state in and out gives the torch stream's per-frame log-probs and transcripts (subsampling 4 and
8, left_chunks 2 and null), int8 runs, other models and a graph that differs are refused, and the CLI writes it.

A tiny random conformer (2 layers, 32 wide, kernel 5) with a scaled-up CTC head (clear argmaxes), batch-norm
statistics and a causal-normalisation prior that are not the identity keeps it fast and still checks each part."""
from __future__ import annotations

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from asr_poc import export_streaming_conformer as conformer_export  # noqa: E402
from asr_poc.export import ExportError, read_metadata  # noqa: E402
from asr_poc.export_streaming import export_streaming, export_streaming_onnx, main, stream_log_probs  # noqa: E402
from asr_poc.export_streaming_conformer import OnnxStreamingConformerModel, initial_state  # noqa: E402
from asr_poc.inference import Transcriber  # noqa: E402
from test_export_streaming import (VOCAB, export_checkpoint, held_out_audio, pushes, refuses_bad_chunks,  # noqa: E402
                                   written_files)

PUSH = 2560  # 160 ms at 16 kHz: not a multiple of either chunk (120 ms at 4x, 160 ms + 2.5 ms of window at 8x)
CHUNK_MS = {4: 120, 8: 160}  # 3 encoder frames of 40 ms, 2 of 80 ms


def tiny_streaming_conformer(subsampling: int = 4, left_chunks=2, streaming: bool = True):
    from asr_poc.plugins import get_model_class

    torch.manual_seed(0)
    arch = {"encoder_dim": 32, "num_heads": 2, "num_layers": 2, "ffn_dim": 64, "kernel_size": 5,
            "subsampling_channels": 8, "dropout": 0.0, "subsampling": subsampling, "left_chunks": left_chunks,
            "streaming_chunk_ms": CHUNK_MS[subsampling] if streaming else None}
    model = get_model_class("conformer")({"model": "conformer", "features": {"normalize": "causal"}, "arch": arch,
                                          "vocab": VOCAB}).eval()
    with torch.no_grad():
        model.head.weight.mul_(10.0)
        model.head.bias[model.tokenizer.blank_id] -= 6.0  # a random 8x model says nothing but blanks otherwise
        model.frontend.prior_mean.add_(0.3 * torch.randn(80))
        for layer in model.encoder.conformer_layers:  # batch norm as a non-trivial affine map
            norm = layer.conv_module.sequential[3]
            norm.running_mean.normal_(0.0, 0.3)
            norm.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint (subsampling 4, left_chunks 2) exported with `python -m asr_poc.export_streaming CHECKPOINT`."""
    return export_checkpoint(tiny_streaming_conformer(), tmp_path_factory.mktemp("run"))


def test_export_writes_the_files_with_sherpa_style_metadata(exported):
    import onnx

    model, folder = exported
    proto, props = written_files(folder)
    meta = read_metadata(folder / "model-streaming.onnx")
    assert props["model_type"] == meta["streaming"] == "conformer-ctc-streaming"
    assert props["chunk_size"] == "3" and props["T"] == "12" and props["decode_chunk_len"] == "12"
    assert props["left_chunks"] == "2" and props["left_context_len"] == "6" and props["subsampling_factor"] == "4"
    assert props["vocab_size"] == str(len(VOCAB)) and props["num_encoder_layers"] == "2"
    names = [i.name for i in proto.graph.input]
    assert names[:5] == ["x", "num_feature_frames", "cached_len", "cached_subsampling_0", "cached_subsampling_1"]
    assert names[5:] == [f"cached_{k}_{i}" for i in range(2) for k in ("key", "value", "conv")]
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert shapes["x"] == [1, 12, 80] and shapes["cached_key_0"] == [1, 2, 6, 16]  # fixed shapes
    assert shapes["cached_subsampling_0"] == [1, 1, 1, 80] and shapes["cached_subsampling_1"] == [1, 8, 1, 40]
    assert shapes["cached_conv_1"] == [1, 4, 32]
    assert [o.name for o in proto.graph.output][:3] == ["log_probs", "num_frames", "new_cached_len"]
    assert meta["layout"]["prior_mean"] == pytest.approx(model.frontend.prior_mean.tolist())
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(folder / "model-streaming.int8.onnx")).graph.node}
    assert (folder / "tokens.txt").read_text().splitlines()[0] == "<pad> 0"


@pytest.mark.parametrize("subsampling", [4, 8])
def test_the_subsampling_in_fixed_windows_gives_the_streams_frames(subsampling):
    """One full window, then a last one with v of W frames valid (zero-padded): the graph's subsampling gives what
    `ConvSubsampling.stream(..., final=True)` gives, for every v."""
    model = tiny_streaming_conformer(subsampling)
    layout = conformer_export._layout(model)
    graph, window = conformer_export._ChunkGraph(model, layout), layout["window"]
    feats = torch.randn(2 * window, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for v in range(1, window + 1):
            pending = [None] * model.subsampling.layers
            ref = torch.cat([model.subsampling.stream(feats[None, :window], pending),
                             model.subsampling.stream(feats[None, window : window + v], pending, final=True)], dim=1)
            state = [torch.zeros(1, c, 1, f) for c, f in layout["pending"]]
            first, n, state = graph.subsample(feats[None, :window], torch.tensor([window]), state)
            padded = torch.cat([feats[window : window + v], torch.zeros(window - v, 80)])
            last, m, _ = graph.subsample(padded[None], torch.tensor([v]), state)
            assert int(n) == layout["chunk_frames"] and ref.shape[1] == int(n) + int(m)
            assert torch.allclose(torch.cat([first, last[:, : int(m)]], dim=1), ref, atol=1e-5)


@pytest.mark.parametrize("subsampling, left_chunks", [(4, 2), (4, None), (8, 2), (8, None)])
def test_the_onnx_stream_gives_the_torch_streams_log_probs_and_texts(exported, tmp_path, subsampling, left_chunks):
    if (subsampling, left_chunks) == (4, 2):
        model, path = exported[0], exported[1] / "model-streaming.onnx"
    else:
        model = tiny_streaming_conformer(subsampling, left_chunks)
        path = export_streaming_onnx(model, tmp_path / "model.onnx")
    if left_chunks is None:  # attention to the whole past: a fixed cache of 30 s
        assert read_metadata(path)["layout"]["cache_frames"] == 30000 // (10 * subsampling)
    onnx_model = OnnxStreamingConformerModel(path, threads=1)
    eager, runtime = Transcriber(model), Transcriber.from_checkpoint(path)
    assert isinstance(runtime.model, OnnxStreamingConformerModel) and runtime.model.streaming
    assert runtime.model.algorithmic_latency_ms == model.algorithmic_latency_ms
    worst, partial = 0.0, False
    for audio in held_out_audio():
        frames = int(model.subsampling.output_lengths(torch.tensor(len(audio) // 160 + 1)))
        for sizes in ([PUSH], [1000, 4099, 17]):
            ref = stream_log_probs(model, torch.from_numpy(audio), sizes[0])
            got = onnx_model.stream_log_probs(audio, sizes[0])
            assert got.shape == ref.shape and ref.shape[0] == frames
            worst = max(worst, float((got - ref).abs().max()))
            want = [r.text for r in eager.stream(pushes(audio, sizes))]
            have = [r.text for r in runtime.stream(pushes(audio, sizes))]
            assert have == want  # every partial text and the final one
        assert want[-1] and runtime.transcribe(audio).text == want[-1]
        partial |= frames % model.chunk_frames > 0
    assert partial  # some stream ends in a partial chunk
    print(f"subsampling {subsampling}, left_chunks={left_chunks}: max abs difference of the per-frame log-probs, "
          f"ONNX vs torch: {worst:.2e}")
    assert worst < 1e-4


def test_int8_streams_and_its_transcripts_are_reported(exported):
    model, folder = exported
    eager, int8 = Transcriber(model), Transcriber.from_checkpoint(folder / "model-streaming.int8.onnx")
    assert isinstance(int8.model, OnnxStreamingConformerModel) and "int8" in int8.model.name
    for audio in held_out_audio():
        want = [r.text for r in eager.stream(pushes(audio, [PUSH]))][-1]
        have = [r.text for r in int8.stream(pushes(audio, [PUSH]))]
        assert all(isinstance(t, str) for t in have) and have[-1]
        print(f"int8: {have[-1]!r}\ntorch: {want!r}")


def test_bad_chunks_other_models_and_a_graph_that_differs_are_refused(exported, tmp_path, monkeypatch, capsys):
    from asr_poc.plugins import get_model_class

    model, folder = exported
    runner = OnnxStreamingConformerModel(folder / "model-streaming.onnx")
    state = initial_state(runner.layout)
    assert runner.layout["window"] == 12 and runner.count_input == "num_feature_frames"
    refuses_bad_chunks(runner, state)
    log_probs, next_state = runner.run_chunk(np.zeros((1, 12, 80), np.float32), 12, state)
    assert log_probs.shape == (3, len(VOCAB)) and int(next_state["cached_len"][0]) == 3
    log_probs, _ = runner.run_chunk(np.zeros((1, 12, 80), np.float32), 5, next_state)  # (5-1)//2+1 = 3, then 2
    assert log_probs.shape == (2, len(VOCAB))

    rnnt = get_model_class("rnn-t")({"model": "rnn-t", "features": {}, "vocab": VOCAB, "arch": {
        "encoder": "conformer", "encoder_dim": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 64, "kernel_size": 5,
        "subsampling_channels": 8, "predictor_dim": 16, "joiner_dim": 16}})
    for other in (tiny_streaming_conformer(streaming=False), rnnt):
        with pytest.raises(ExportError) as err:
            export_streaming_onnx(other, tmp_path / "x.onnx")
        assert "\n" not in str(err.value) and "streaming whisper-ctc or conformer" in str(err.value)
    assert not (tmp_path / "x.onnx").exists()
    tiny_streaming_conformer(streaming=False).save_checkpoint(tmp_path / "full.pt")
    with pytest.raises(ExportError, match="'conformer' without streaming"):
        export_streaming(tmp_path / "full.pt", out_dir=tmp_path / "out")
    capsys.readouterr()
    assert main([str(tmp_path / "full.pt")]) == 1
    assert capsys.readouterr().err.count("\n") == 1

    forward = conformer_export._ChunkGraph.forward  # a graph whose log-probs are not the torch stream's
    monkeypatch.setattr(conformer_export._ChunkGraph, "forward",
                        lambda self, *args: (forward(self, *args)[0] + 0.5, *forward(self, *args)[1:]))
    with pytest.raises(ExportError, match="other log-probs than the torch stream"):
        export_streaming_onnx(model, tmp_path / "differs.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.pt"]  # nothing written, no temporary file


def test_the_command_line_exports_a_streaming_conformer(exported, tmp_path):
    from asr_poc.cli import main as asr_poc

    model, folder = exported
    assert asr_poc(["export", str(folder / "best.pt"), "--streaming", "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model-streaming.onnx", "tokens.txt"]
    texts = [Transcriber.from_checkpoint(tmp_path / "out" / "model-streaming.onnx").transcribe(a).text
             for a in held_out_audio(1)]
    assert texts == [[r.text for r in Transcriber(model).stream(pushes(a, [PUSH]))][-1] for a in held_out_audio(1)]


def test_bench_export_streams_eager_onnx_and_int8_on_the_same_files(exported):
    """`asr-poc bench --export` on a streaming checkpoint: the three backends stream the same files; fp32 changes no
    transcript, every backend has its chunk compute, and the report has the section."""
    from types import SimpleNamespace

    from asr_poc.bench.decoding import decoding_and_export, report_sections, streams_to_onnx

    model, folder = exported
    assert streams_to_onnx(model) and not streams_to_onnx(tiny_streaming_conformer(streaming=False))
    system = SimpleNamespace(kind="checkpoint", source=str(folder / "best.pt"), model=model)
    both = decoding_and_export(system, held_out_audio(2), [], None, export=True)
    assert both["export"].get("backends"), both["export"]  # the whole-utterance export beside the streamed one
    result = both["export_streaming"]
    rows = {r["backend"]: r for r in result["backends"]}
    assert list(rows) == ["eager", "onnx", "int8"] and result["utterances"] == 2 and result["push_ms"] == 160
    assert rows["eager"]["speedup"] == 1.0 and all(r["rtfx"] > 0 and r["speedup"] > 0 for r in rows.values())
    assert rows["onnx"]["changed_transcripts"] == 0 and rows["onnx"]["wer_vs_eager"] == 0.0
    assert all(r["chunk_ms_p50"] is not None and r["chunk_ms_p95"] >= r["chunk_ms_p50"] for r in rows.values())
    text = "\n".join(report_sections({"systems": [{"name": "run", "export_streaming": result}]}))
    assert "## Streaming export: eager stream vs ONNX vs int8, 160 ms pushes (run)" in text
    assert "| onnx |" in text and "compute per chunk p50 / p95 ms: eager" in text
