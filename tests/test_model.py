"""Conformer-CTC: size presets, a loss that falls, batched decoding, and self-contained checkpoints."""
import numpy as np
import pytest
import torch

from asr_poc.datasets.interface import collate_fn
from asr_poc.models.conformer import ConformerConfig, ConformerCTC
from asr_poc.models.interface import BaseASRModel
from asr_poc.text import CharTokenizer

TEXTS = ["the cat sat", "a dog ran far"]


def build(size="xs", **overrides) -> ConformerCTC:
    tok = CharTokenizer.from_texts(TEXTS)
    cfg = ConformerConfig(size=size, **overrides).model_dump()
    return ConformerCTC({**cfg, "vocab": tok.vocab, "features": {"sample_rate": 16000, "n_mels": 80}})


def batch(model):
    torch.manual_seed(0)
    items = [{"waveform": torch.randn(16000 + 4000 * i) * 0.1, "text": t} for i, t in enumerate(TEXTS)]
    return collate_fn(items, model.tokenizer)


@pytest.mark.parametrize("size, low, high", [("xs", 1e6, 3e6), ("s", 8e6, 13e6), ("m", 25e6, 36e6)])
def test_size_presets(size, low, high):
    assert low < build(size).num_parameters() < high


def test_subsampling_8x_gives_a_quarter_of_4x_frames_halved():
    m4, m8 = build(subsampling=4), build(subsampling=8)
    wav, lengths = torch.randn(1, 32000), torch.tensor([32000])
    f4, n4 = m4.encode(wav, lengths)
    f8, n8 = m8.encode(wav, lengths)
    assert f4.shape[1] == 51 and f8.shape[1] == 26 and int(n8) == 26


def test_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = build(dropout=0.0)
    b = batch(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(model(b))
    for _ in range(60):
        opt.zero_grad()
        loss = model(b)
        loss.backward()
        opt.step()
    assert float(loss) < first * 0.5
    model.eval()
    assert model.transcribe(b["waveforms"], b["waveform_lengths"]) == TEXTS


def test_checkpoint_alone_rebuilds_the_model(tmp_path):
    model = build()
    opt = torch.optim.Adam(model.parameters())
    model.save_checkpoint(tmp_path / "m.pt", optimizer=opt, epoch=7)
    loaded = BaseASRModel.from_checkpoint(tmp_path / "m.pt")
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    model.eval()
    assert loaded.inference(wav) == model.inference(wav)
    assert loaded.tokenizer.vocab == model.tokenizer.vocab and loaded.features == model.features
    assert model.load_checkpoint(tmp_path / "m.pt", optimizer=opt) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_a_checkpoint_in_the_pre_spec_layout_loads(tmp_path):
    """Checkpoints written before the spec hold one flat config dict (format 1: the `models.conformer` keys beside
    vocab, four feature keys and spec_augment) and no normalization (no prior buffer): they load, as `none`."""
    model = build()
    legacy = {**ConformerConfig(input_dim=80).model_dump(), "vocab": model.tokenizer.vocab, "spec_augment": True,
              "features": {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 80}}
    torch.save({"format": 1, "model_name": "conformer", "config": legacy, "state_dict": model.state_dict(),
                "epoch": 3}, tmp_path / "old.pt")
    loaded = BaseASRModel.from_checkpoint(tmp_path / "old.pt")
    assert loaded.spec.arch == ConformerConfig(input_dim=80) and loaded.spec.spec_augment and loaded.spec.vocab == legacy["vocab"]
    assert loaded.features.normalize == "none" and "frontend.prior_mean" not in loaded.state_dict()
    wav = torch.randn(1, 8000) * 0.1
    feats, _ = loaded.frontend(wav, torch.tensor([8000]))
    torch.testing.assert_close(feats, (loaded.frontend.log_mel(wav) + 4).transpose(1, 2) / 4)
    assert loaded.transcribe(wav, torch.tensor([8000])) == model.eval().transcribe(wav, torch.tensor([8000]))


def test_the_spec_is_built_once_from_the_config_and_stored_as_plain_data(tmp_path):
    from asr_poc.config import load_config
    from asr_poc.models.conformer import ConformerSpec
    from asr_poc.models.spec import model_spec

    cfg = load_config(None, ["models.conformer.size=s", "features.n_mels=64", "features.normalize=causal"],
                      check_data=False)
    spec = model_spec(cfg, CharTokenizer.from_texts(TEXTS).vocab)
    assert isinstance(spec, ConformerSpec) and spec.arch.encoder_dim == 256 and spec.arch.input_dim == 64
    assert spec.features.n_mels == 64 and spec.features.normalize == "causal"
    with pytest.raises(Exception):
        spec.arch = None  # frozen
    model = ConformerCTC(spec)
    state = model.checkpoint_state()
    assert state["format"] == 2 and set(state["config"]) == {"model", "features", "vocab", "arch", "spec_augment",
                                                             "extra"}
    assert all(type(v) in (dict, str, bool) for v in state["config"].values())  # plain data, no objects
    assert ConformerCTC(state["config"]).spec == spec


def test_normalization_and_its_prior_travel_in_the_checkpoint(tmp_path):
    tok = CharTokenizer.from_texts(TEXTS)
    model = ConformerCTC({**ConformerConfig().model_dump(), "vocab": tok.vocab,
                          "features": {"normalize": "utterance"}})
    model.frontend.prior_mean.fill_(-3.25)
    model.save_checkpoint(tmp_path / "m.pt")
    loaded = BaseASRModel.from_checkpoint(tmp_path / "m.pt")
    assert loaded.features.normalize == "utterance" and float(loaded.frontend.prior_mean[0]) == -3.25


def test_from_checkpoint_refuses_what_is_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        BaseASRModel.from_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        BaseASRModel.from_checkpoint(tmp_path / "missing.pt")


def test_encoder_loads_torchaudio_conformer_weights_and_computes_the_same():
    """Checkpoints trained with torchaudio's Conformer load into `streaming.ConformerEncoder` (same parameter names)
    and give the same frames, with padding in the batch and without; train mode too (dropout off)."""
    from torchaudio.models import Conformer

    from asr_poc.models.streaming import ConformerEncoder

    torch.manual_seed(0)
    theirs = Conformer(input_dim=32, num_heads=2, ffn_dim=64, num_layers=2, depthwise_conv_kernel_size=7, dropout=0.0)
    for norm in [m for m in theirs.modules() if isinstance(m, torch.nn.BatchNorm1d)]:
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2.0)
    ours = ConformerEncoder(32, 2, 64, 2, 7, 0.0)
    ours.load_state_dict(theirs.state_dict())  # strict: every name matches
    x, lengths = torch.randn(3, 20, 32), torch.tensor([20, 13, 7])
    for mode in ("eval", "train"):
        getattr(theirs, mode)(), getattr(ours, mode)()
        expected, _ = theirs(x, lengths)
        got = ours(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(got[i, :n], expected[i, :n], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours(x[:1], lengths[:1]), theirs(x[:1], lengths[:1])[0], atol=1e-4, rtol=1e-4)
