"""`asr-poc export RUN --format onnx [--int8]`: a CTC model as one ONNX file, and that file run by onnxruntime.

The whole model goes into the graph, log-mel front end included: waveforms (batch, samples) and their lengths in,
CTC logits (batch, frames, vocab) and frame lengths out, batch and time dynamic. What is traced is
`models.traceable.traceable(model)`: the same weights and logits, with the STFT as matrix products over a fixed DFT
basis (onnxruntime's own `STFT` op took half the time) and fewer, larger ops in the encoder. It is traced by torch's
dynamo exporter (`torch.onnx.export(dynamo=True)`, which needs `onnxscript`). A streaming model is exported with
full context (what `transcribe` uses). `--int8` also writes a dynamically quantised copy (`quantize_int8`: int8
weights, one scale per output channel, of the encoder's matrix products; the front end and the final projection
stay float). The model's name, vocabulary and feature settings travel in the file's metadata (`asr_poc`), so
`Transcriber.from_checkpoint("best.onnx")` needs nothing else. Before a file is renamed into place it is run in
onnxruntime on lengths the tracer never saw and compared with the eager model: a graph that fails or computes other
logits is refused (today the Emformer transducer's CTC head is: its padding arithmetic does not survive tracing).
Files are written to a temporary name and renamed. `OnnxStreamingModel` runs the streaming exports (explicit state in
and out, `export_streaming.py`) chunk by chunk.
"""
from __future__ import annotations

import inspect
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator, Optional

import numpy as np
import torch

from .decoding.emissions import ctc_logits_fn
from .io import fsync_folder
from .models.interface import BaseASRModel
from .models.traceable import traceable
from .runs import Run
from .text import CharTokenizer

METADATA_KEY = "asr_poc"
OPSET = 23  # 23: ONNX `Attention`, one fused op per attention (onnxruntime >= 1.22 runs it on the CPU)
EXAMPLE_SECONDS = (2.0, 1.5)  # two example utterances of different lengths: batch and time stay dynamic


class ExportError(ValueError):
    """A model or file that cannot be exported or loaded; `str()` is one line."""


FULL_CONTEXT_CHUNK = 1 << 30  # encoder frames: one chunk longer than any input


class _CTCGraph(torch.nn.Module):
    """The exported function: (waveforms, lengths) -> (logits, frame_lengths).

    A model whose logits take a `chunk` (the conformer) is traced with one chunk longer than any input: full
    context, without the data-dependent branch of the eager path (`if (lengths < frames).any()`, which skips the
    mask at batch 1 and cannot be traced)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.fn = ctc_logits_fn(model)
        self.kwargs = {"chunk": FULL_CONTEXT_CHUNK} if "chunk" in inspect.signature(self.fn).parameters else {}

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fn(waveforms, lengths, **self.kwargs)


def _replace_atomically(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_folder(path.parent)


@contextmanager
def exporting(model, path: Path, what: str) -> Iterator[Path]:
    """The model on the CPU in eval mode while the body writes and checks a temporary file (the yielded path),
    then renamed to `path`; any failure leaves no file and is an `ExportError` of one line ("`what` failed: ...").
    The model's device and mode are restored."""
    device, was_training = model.device, model.training
    model.cpu().eval()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        _replace_atomically(tmp, path)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, ExportError):
            raise
        raise ExportError(f"{what} failed: {err.__class__.__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}") from err
    finally:
        model.to(device).train(was_training)


def export_onnx(model, path: str | os.PathLike, source: str = "") -> Path:
    """Export `model` (a CTC `BaseASRModel`) to `path` as ONNX; returns the path."""
    import onnx

    path = Path(path)
    with exporting(model, path, f"ONNX export of model {model.name!r}") as tmp:
        graph = _CTCGraph(traceable(model)).eval()  # the STFT as DFT matrix products (models/traceable.py)
        rate = model.sample_rate
        lengths = torch.tensor([int(s * rate) for s in EXAMPLE_SECONDS])
        waveforms = torch.randn(len(lengths), int(lengths.max()), generator=torch.Generator().manual_seed(0)) * 0.1
        batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=model.features.n_fft,
                                                                           max=rate * 3600)
        with torch.no_grad():
            program = torch.onnx.export(
                graph, (waveforms, lengths), input_names=["waveforms", "lengths"],
                output_names=["logits", "frame_lengths"], dynamic_shapes=({0: batch, 1: samples}, {0: batch}),
                opset_version=OPSET, dynamo=True, verbose=False)
        proto = program.model_proto
        meta = {"format": 1, "model_name": model.name, "config": model.config, "source": source,
                "sample_rate": rate, "n_fft": model.features.n_fft, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "torch": torch.__version__, "quantized": False}
        onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(meta, default=str)})
        onnx.save(proto, tmp)
        _check_export(_CTCGraph(model).eval(), tmp, rate)  # against the eager front end (torch.stft)
    return path


def _check_export(graph: _CTCGraph, path: Path, rate: int) -> None:
    """Run the file on a length the tracer never saw and compare with eager: a graph that fails or computes other
    logits is refused (ExportError) instead of being written."""
    import onnxruntime as ort

    lengths = torch.tensor([int(0.77 * rate), int(1.23 * rate)])
    waveforms = torch.randn(2, int(lengths.max()), generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():  # the eager model as `transcribe` runs it (full context, no chunk)
        ref, ref_frames = graph.fn(waveforms, lengths)
    try:
        got, frames = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"waveforms": waveforms.numpy(), "lengths": lengths.numpy()})
    except Exception as err:
        raise ExportError(f"the exported graph of {graph.model.name!r} does not run in onnxruntime: "
                          f"{str(err).splitlines()[0][:200]}") from None
    scale = float(ref.abs().max()) or 1.0
    for i, n in enumerate(ref_frames.tolist()):
        if int(frames[i]) != n or float(np.abs(got[i, :n] - ref[i, :n].numpy()).max(initial=0.0)) > 1e-3 * scale:
            raise ExportError(f"the exported graph of {graph.model.name!r} computes other logits than the model "
                              f"(frames {int(frames[i])} vs {n}); not written")


def quantize_int8(fp32: str | os.PathLike, path: str | os.PathLike, output: str = "logits") -> Path:
    """A dynamically quantised copy of an exported file, metadata kept; returns the path. `output`: the graph
    output whose final projection stays float (`log_probs` in a streaming export).

    Only the weight matrix products (`int8_nodes`) become int8, with one scale per output channel; activations
    are quantised on the fly. Measured (benchmarks/README.md): convolutions as `ConvInteger` are slower than float
    ones, per-tensor weight scales change more transcripts, and the front end must stay float.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, path = Path(fp32), Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        quantize_dynamic(fp32, tmp, op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8,
                         nodes_to_quantize=int8_nodes(fp32, output))
        proto = onnx.load(tmp)
        meta = {**read_metadata(fp32), "quantized": "int8 (dynamic, per-channel weight MatMuls)"}
        props = {p.key: p.value for p in proto.metadata_props}  # other props (a streaming export's) are kept
        onnx.helper.set_model_props(proto, {**props, METADATA_KEY: json.dumps(meta, default=str)})
        onnx.save(proto, tmp)
        _replace_atomically(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


FRONTEND_NAMES = ("frontend", "log_mel")  # the log-mel modules of the conformer and of whisper-ctc


def frontend_nodes(path: str | os.PathLike) -> list[str]:
    """Nodes that read the front end's constants (DFT basis, mel filter bank): kept in float, since the mel filter
    bank's weights go down to 1e-4, below what int8 resolves, so quantising them distorts the log-mel features and
    every transcript with them (benchmarks/README.md, "Beam search with an n-gram LM, and ONNX export")."""
    import onnx

    proto = onnx.load(str(path))
    frontend = {i.name for i in proto.graph.initializer if any(k in i.name for k in FRONTEND_NAMES)}
    return [n.name for n in proto.graph.node if frontend.intersection(n.input)]


def projection_node(proto, output: str = "logits") -> Optional[str]:
    """The MatMul of the final projection: the first one met walking back from the `output` output."""
    producers = {out: node for node in proto.graph.node for out in node.output}
    consts = {i.name for i in proto.graph.initializer}
    node = producers.get(output)
    while node is not None and node.op_type != "MatMul":
        node = next((producers[i] for i in node.input if i in producers and i not in consts), None)
    return node.name if node is not None else None


def int8_nodes(path: str | os.PathLike, output: str = "logits") -> list[str]:
    """The MatMuls to quantise: those with a constant weight matrix, except the front end's and the final
    projection (the logits' scale decides every greedy choice; it is one small matrix)."""
    import onnx

    proto = onnx.load(str(path))
    consts = {i.name for i in proto.graph.initializer}
    keep_float = set(frontend_nodes(path)) | {projection_node(proto, output)}
    return [n.name for n in proto.graph.node
            if n.op_type == "MatMul" and n.input[1] in consts and n.name not in keep_float]


def read_metadata(path: str | os.PathLike) -> dict:
    """The `asr_poc` metadata of an exported file (ExportError if it has none)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ExportError(f"{path}: not an ONNX file ({err.__class__.__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ExportError(f"{path}: no asr_poc metadata (export it with: asr-poc export RUN --format onnx)")
    return json.loads(props[METADATA_KEY])


def export_checkpoint(checkpoint: str | os.PathLike, int8: bool = False, out_dir: Optional[str | os.PathLike] = None
                      ) -> dict:
    """Export a checkpoint file next to itself (or into `out_dir`): `<stem>.onnx` and with `int8` `<stem>.int8.onnx`.

    Returns the paths, sizes and the export time.
    """
    checkpoint = Path(checkpoint)
    model = BaseASRModel.from_checkpoint(checkpoint, device="cpu")
    folder = Path(out_dir) if out_dir else checkpoint.parent
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fp32 = export_onnx(model, folder / f"{checkpoint.stem}.onnx", source=str(checkpoint))
    result = {"checkpoint": str(checkpoint), "onnx": str(fp32), "onnx_bytes": fp32.stat().st_size,
              "export_seconds": round(time.perf_counter() - start, 1)}
    if int8:
        q = quantize_int8(fp32, folder / f"{checkpoint.stem}.int8.onnx")
        result.update(int8=str(q), int8_bytes=q.stat().st_size)
    return result


def resolve_checkpoint(run_or_checkpoint: str, root: Optional[str] = None) -> Path:
    """A checkpoint file as given, or a run's (id or folder) best.pt, else its last.pt."""
    path = Path(run_or_checkpoint)
    if path.is_file():
        return path

    run = Run.open(run_or_checkpoint, root=root)
    for name in ("best.pt", "last.pt"):
        if (run.path / name).is_file():
            return run.path / name
    raise ExportError(f"run {run.id}: no best.pt or last.pt to export yet")


class OnnxCTCModel:
    """An exported model run by onnxruntime, with the part of `BaseASRModel` that `Transcriber` and bench use."""

    streaming = False

    def __init__(self, path: str | os.PathLike, threads: Optional[int] = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.meta = read_metadata(self.path)
        self.name = f"{self.meta['model_name']} (onnx{', int8' if self.meta.get('quantized') else ''})"
        self.config = self.meta["config"]
        self.tokenizer = CharTokenizer(self.config["vocab"])
        self.features = SimpleNamespace(sample_rate=int(self.meta["sample_rate"]), n_fft=int(self.meta["n_fft"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # layer norm, GELU fusions ...
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def eval(self) -> "OnnxCTCModel":
        return self

    def train(self, mode: bool = True) -> "OnnxCTCModel":
        return self

    @property
    def training(self) -> bool:
        return False

    def num_parameters(self) -> int:
        import onnx

        proto = onnx.load(str(self.path))
        return int(sum(np.prod(t.dims) for t in proto.graph.initializer))

    def ctc_logits(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, frames = self.session.run(None, {
            "waveforms": waveforms.detach().float().cpu().numpy(),
            "lengths": lengths.detach().to(torch.int64).cpu().numpy()})
        return torch.from_numpy(logits), torch.from_numpy(frames)

    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy CTC, as the eager model's `transcribe`."""
        logits, frames = self.ctc_logits(waveforms, lengths)
        return self.tokenizer.decode_ctc_batch(logits, frames)

    def inference(self, waveform) -> str:
        wav = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(1, -1)
        return self.transcribe(wav, torch.tensor([wav.shape[1]]))[0]


class OnnxStreamingModel(OnnxCTCModel):
    """A streaming export (`export_streaming.py`: whisper-ctc, `export_streaming_conformer.py`: conformer) run by
    onnxruntime, chunk by chunk, with the streaming part of `BaseASRModel`: `init_stream_state()`,
    `stream_step(samples, state, final)`, and `ctc_logits` / `transcribe` (each utterance streamed).

    The graph takes x (1, window, n_mels), its valid frame count (`count_input`) and the state inputs, and returns
    log_probs, num_frames and the next state. A subclass names its `format` and gives the streamed log-mel in front
    of it (`_streaming_features`) and the state at the start (`_initial_graph_state`)."""

    streaming = True
    format, kind = "", ""  # the metadata's "streaming" value; the model's name, for errors
    count_input = "num_frames"  # the graph's second input: valid frames of x
    window_text = "frames"  # what x's frames are, for errors
    lookahead_ms, frontend_delay_ms = 0.0, 0.0

    def __init__(self, path: str | os.PathLike, threads: Optional[int] = None):
        if read_metadata(path).get("streaming") != self.format:
            raise ExportError(f"{path}: not a streaming {self.kind} export (no {self.format!r} in its metadata)")
        super().__init__(path, threads)  # metadata, tokenizer, features, the session
        self.layout = self.meta["layout"]
        self.name = f"{self.meta['model_name']} (onnx streaming{', int8' if self.meta.get('quantized') else ''})"
        self.chunk_ms = float(self.layout["chunk_ms"])
        self._mel = self._streaming_features()
        self._state_names = [i.name for i in self.session.get_inputs()][2:]
        self._x_shape = (1, self.layout["window"], self.layout["n_mels"])

    def _streaming_features(self):
        """The streamed log-mel (`init_state()`, `(samples, state, final) -> (frames, n_mels)`), outside the graph."""
        raise NotImplementedError

    def _initial_graph_state(self) -> dict[str, np.ndarray]:
        """The graph's state inputs at the start of a stream."""
        raise NotImplementedError

    @property
    def algorithmic_latency_ms(self) -> float:
        return self.chunk_ms + self.lookahead_ms + self.frontend_delay_ms

    # --- the graph, one chunk ------------------------------------------------------------------------------------
    def run_chunk(self, x: np.ndarray, valid_frames: int, graph_state: dict[str, np.ndarray]
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One call of the graph: mel frames x (1, T, n_mels) of which `valid_frames` are valid, and the state
        from `init_stream_state()["graph"]` or the previous call -> (log-probs of the valid frames (n, vocab), next
        state)."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape != self._x_shape:
            raise ValueError(f"a chunk of {self.path.name} is x of shape {self._x_shape} (batch, {self.window_text}"
                             f", mel bins); got {x.shape}")
        if not 0 < valid_frames <= self._x_shape[1]:
            raise ValueError(f"{self.count_input} must be 1..{self._x_shape[1]}; got {valid_frames}")
        feeds = {"x": x, self.count_input: np.array([valid_frames], np.int64), **graph_state}
        out = self.session.run(None, feeds)
        n = int(out[1][0])
        return out[0][0, :n], dict(zip(self._state_names, out[2:]))

    # --- streaming, as BaseASRModel ------------------------------------------------------------------------------
    def init_stream_state(self) -> dict:
        return {"mel": self._mel.init_state(), "pending": np.zeros((0, self.layout["n_mels"]), np.float32),
                "graph": self._initial_graph_state(), "position": 0, "last": self.tokenizer.blank_id, "tokens": [],
                "log_probs": None}

    def _chunks(self, samples, state: dict, final: bool):
        """Run every chunk the new samples complete (at `final`, also the last partial one); yield its log-probs."""
        samples = torch.as_tensor(np.asarray(samples, dtype=np.float32)) if not isinstance(samples, torch.Tensor) \
            else samples
        mels = self._mel(samples, state["mel"], final).numpy()
        pending = np.concatenate([state["pending"], mels]) if len(mels) else state["pending"]
        window, shift = self._x_shape[1], self.layout["shift"]
        while len(pending) >= window or (final and len(pending) > 0):
            valid = min(window, len(pending))
            x = pending[:window]
            if valid < window:
                x = np.concatenate([x, np.zeros((window - valid, x.shape[1]), np.float32)])
            log_probs, state["graph"] = self.run_chunk(x[None], valid, state["graph"])
            state["position"] += len(log_probs)  # encoder frames so far
            pending = pending[shift:] if valid == window else pending[:0]
            yield log_probs
        state["pending"] = pending

    def stream_step(self, samples, state: dict, final: bool = False) -> tuple[str, dict]:
        """Feed new samples (1-D, at `sample_rate`); returns (greedy CTC text so far, state)."""
        for log_probs in self._chunks(samples, state, final):
            state["last"] = self.tokenizer.extend_ctc(log_probs.argmax(-1).tolist(), state["tokens"], state["last"])
        return self.tokenizer.decode(state["tokens"]), state

    def stream_log_probs(self, wav, push: int) -> torch.Tensor:
        """Per-frame log-probs (frames, vocab) of `wav` streamed `push` samples at a time, then flushed."""
        wav = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(-1)
        state, pieces = self.init_stream_state(), []
        for start in range(0, wav.numel(), push):
            pieces += list(self._chunks(wav[start : start + push], state, False))
        pieces += list(self._chunks(torch.zeros(0), state, True))
        if not pieces:
            return torch.zeros(0, self.layout["vocab_size"])
        return torch.from_numpy(np.concatenate(pieces))

    # --- whole utterances (each streamed) ------------------------------------------------------------------------
    def ctc_logits(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) waveforms -> per-frame log-probs (B, frames, vocab) and frame counts, each row streamed whole."""
        rows = [self.stream_log_probs(w[: int(n)].cpu(), int(n)) for w, n in zip(waveforms, lengths)]
        frames = torch.tensor([r.shape[0] for r in rows], dtype=torch.int64)
        out = torch.zeros(len(rows), max([r.shape[0] for r in rows], default=0), self.layout["vocab_size"])
        for i, r in enumerate(rows):
            out[i, : r.shape[0]] = r
        return out, frames
