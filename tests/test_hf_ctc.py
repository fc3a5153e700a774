"""hf-ctc: a pretrained transformers CTC model (here a tiny random wav2vec2 saved with save_pretrained) fine-tuned
through the real trainer, resumed, rebuilt offline from its checkpoint, transcribed and streamed."""
from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_poc.bench.systems import load_system
from asr_poc.bench.training import training_config
from asr_poc.cli import main
from asr_poc.config import ConfigError, load_config
from asr_poc.datasets.interface import DatasetConfig
from asr_poc.inference import Transcriber
from asr_poc.models.hf_ctc import HFCTC, PretrainedNotFound, PretrainedVocabTokenizer
from asr_poc.models.interface import BaseASRModel
from asr_poc.plugins import load_dataset
from asr_poc.text import CharTokenizer
from asr_poc.runs import Run
from asr_poc.training.trainer import train

UPPER_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]  # wav2vec2-base-960h's layout


def save_tiny_wav2vec2(folder: Path, with_processor: bool) -> Path:
    """A randomly initialised ~30k-parameter wav2vec2 CTC model (10 ms frames) saved as a hub folder would be."""
    from transformers import AutoModelForCTC, Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16, 16),
        conv_stride=(5, 4, 4, 2), conv_kernel=(10, 8, 4, 4), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, vocab_size=len(UPPER_VOCAB), pad_token_id=0)
    AutoModelForCTC.from_config(config).save_pretrained(folder)
    if with_processor:
        (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(UPPER_VOCAB)}))
        Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), do_lower_case=False).save_pretrained(folder)
        Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True,
                                 return_attention_mask=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """Model, tokenizer (upper-case letters, blank '<pad>') and feature extractor."""
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("tiny-w2v2"), with_processor=True)


@pytest.fixture(scope="module")
def bare_pretrained(tmp_path_factory) -> Path:
    """Weights and config only, like a self-supervised checkpoint: our vocabulary and a new head are used."""
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("tiny-w2v2-bare"), with_processor=False)


# these tests are about the model: no on-the-fly augmentation where the data sets have it
NO_AUGMENTATION = ["datasets.synthetic.augment=null"] if "augment" in DatasetConfig.model_fields else []


def hf_config(corpus: Path, root: Path, folder: Path, *overrides: str) -> dict:
    return load_config(None, ["model=hf-ctc", f"models.hf-ctc.pretrained={folder}", f"datasets.synthetic.path={corpus}",
                              f"checkpoint_dir={root}", "training.batch_size=4", "training.eval_utterances=0",
                              "training.warmup_steps=4", "training.learning_rate=0.003", "training.extra_eval=[]",
                              *NO_AUGMENTATION, *overrides])


def build(folder: Path, corpus: Path, **keys) -> HFCTC:
    cfg = hf_config(corpus, folder.parent, folder, *(f"models.hf-ctc.{k}={v}" for k, v in keys.items()))
    vocab = CharTokenizer.from_texts(["abcdefghijklmnopqrstuvwxyz'"]).vocab
    return HFCTC({**cfg["models"]["hf-ctc"], "vocab": vocab, "features": {"sample_rate": 16000}})


def test_fine_tunes_resumes_and_rebuilds_offline_then_transcribes_and_streams(pretrained, small_corpus, tmp_path,
                                                                              monkeypatch):
    run = Run.create(hf_config(small_corpus, tmp_path, pretrained, "training.max_steps=12",
                               "models.hf-ctc.head_learning_rate=0.01"))
    assert train(run)["state"] == "finished", run.status
    losses = [e["loss"] for e in run.events("step")]
    assert len(losses) == 12 and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses

    # optimizer: body and head at their own rates; checkpoint: plain data (weights_only) with the HF config in it
    state = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    assert [g["initial_lr"] for g in state["optimizer"]["param_groups"]] == [0.003, 0.01]
    assert state["model_name"] == "hf-ctc" and state["config"]["extra"]["hf_config"]["model_type"] == "wav2vec2"
    assert state["config"]["vocab"] == {s: i for i, s in enumerate(UPPER_VOCAB)}  # the pretrained vocabulary

    run.override_training(["training.max_steps=14"])
    assert train(run, resume=True)["state"] == "finished", run.status
    assert [e["step"] for e in run.events("step")] == list(range(1, 15))
    assert any("at step 12" in e["message"] for e in run.events("log"))

    # without the pretrained folder and without a hub, the checkpoint alone rebuilds the model
    shutil.move(pretrained, tmp_path / "moved")
    try:
        transcriber = Transcriber.from_checkpoint(run.last_checkpoint)
    finally:
        shutil.move(tmp_path / "moved", pretrained)
    assert isinstance(transcriber.model, HFCTC) and not transcriber.model.streaming
    item = load_dataset("synthetic", run.config["datasets"]["synthetic"], "test")[0]
    wav = item["waveform"].numpy()
    whole = transcriber.transcribe(wav)
    assert whole.audio_seconds == pytest.approx(len(wav) / 16000) and whole.text == whole.text.lower()
    results = list(transcriber.stream(np.array_split(wav, 7)))
    assert results[-1].is_final and results[-1].text == whole.text  # re-decoding fallback, same final text
    assert transcriber.transcribe(wav[:100]).text is not None  # shorter than the receptive field: padded


def test_resume_is_exact(pretrained, small_corpus, tmp_path):
    """3 steps in one go, and 2 + resume for 1 more, give the same weights (HF's time masks included)."""
    straight = Run.create(hf_config(small_corpus, tmp_path, pretrained, "training.max_steps=3"))
    split = Run.create(hf_config(small_corpus, tmp_path, pretrained, "training.max_steps=2"))
    assert train(straight)["state"] == "finished" and train(split)["state"] == "finished"
    split.override_training(["training.max_steps=3"])
    assert train(split, resume=True)["state"] == "finished"
    a, b = (torch.load(r.last_checkpoint, weights_only=True)["state_dict"] for r in (straight, split))
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_a_model_without_a_tokenizer_gets_the_corpus_vocabulary_and_a_new_head(bare_pretrained, small_corpus):
    model = build(bare_pretrained, small_corpus)
    assert type(model.tokenizer) is CharTokenizer and model.hf.lm_head.out_features == len(model.tokenizer)
    assert model.spec.extra["hf_config"]["vocab_size"] == len(model.tokenizer) and model.spec.extra["tokenizer"] is None
    rebuilt = HFCTC(model.config)  # from the checkpoint's config alone
    rebuilt.load_state_dict(model.state_dict())
    wav = torch.randn(2, 8000) * 0.1
    assert model.eval().transcribe(wav, torch.tensor([8000, 5000])) == rebuilt.eval().transcribe(
        wav, torch.tensor([8000, 5000]))


def test_long_audio_is_decoded_in_overlapping_windows(pretrained, small_corpus, monkeypatch):
    model = build(pretrained, small_corpus).eval()
    wav = torch.randn(1, 48000) * 0.1  # 3 s
    whole = model._logits(wav, torch.tensor([48000]))[0][0]
    monkeypatch.setattr(model, "window_seconds", 1.0)
    monkeypatch.setattr(model, "context_seconds", 0.25)
    seen, forward = [], model.hf.forward
    monkeypatch.setattr(model.hf, "forward", lambda x, **kw: seen.append(x.shape[1]) or forward(x, **kw))
    windowed = model._long_logits(wav[0])
    assert len(seen) == 6 and max(seen) <= 16000  # 0.5 s of new audio a window, 0.25 s of context either side
    assert abs(windowed.shape[0] - whole.shape[0]) <= 2
    assert model.transcribe(wav, torch.tensor([48000]))[0] == model.tokenizer.decode_ctc(windowed.argmax(-1).tolist())


def test_pretrained_vocabulary_spells_our_lower_case_text(pretrained, small_corpus):
    tokenizer = build(pretrained, small_corpus).tokenizer
    assert isinstance(tokenizer, PretrainedVocabTokenizer) and tokenizer.upper_case and tokenizer.blank_id == 0
    ids = tokenizer.encode("It's ten o'clock")
    assert ids == [UPPER_VOCAB.index(c) for c in "IT'S|TEN|O'CLOCK"]
    assert tokenizer.decode(ids) == "it's ten o'clock"
    assert tokenizer.decode_ctc([0, ids[0], ids[0], 0, *ids[1:]]) == "it's ten o'clock"


def test_freeze_feature_encoder(pretrained, small_corpus):
    batch = {"waveforms": torch.randn(2, 16000) * 0.1, "waveform_lengths": torch.tensor([16000, 12000]),
             "tokens": torch.tensor([[5, 6, 7], [8, 9, 0]]), "token_lengths": torch.tensor([3, 2])}
    for freeze in (True, False):
        model = build(pretrained, small_corpus, freeze_feature_encoder=freeze).train()
        model(batch).backward()
        encoder = list(model.hf.wav2vec2.feature_extractor.parameters())
        assert all((p.grad is None) == freeze for p in encoder)
        assert model.hf.lm_head.weight.grad is not None
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert sum(len(g["params"]) for g in model.parameter_groups(1e-3)) == len(trainable)  # what the optimizer gets
        assert (len(trainable) < len(list(model.parameters()))) == freeze


def test_unreachable_pretrained_is_one_line(small_corpus, tmp_path):
    with pytest.raises(PretrainedNotFound) as err:  # HF_HUB_OFFLINE is set for the tests (conftest)
        build(tmp_path / "no-such-folder", small_corpus)  # not a folder, so taken as a hub id
    assert "\n" not in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)
    run = Run.create(hf_config(small_corpus, tmp_path, "facebook/wav2vec2-base-960h", "training.max_steps=1"))
    status = train(run)
    assert status["state"] == "failed" and status["error"] == (
        "PretrainedNotFound: models.hf-ctc.pretrained = 'facebook/wav2vec2-base-960h': not a local folder, and not "
        "in the Hugging Face cache (HF_HUB_OFFLINE is set: no hub access)")
    with pytest.raises(ConfigError, match=r"^models\.hf-ctc\.pretrained = None: Value error, set it to a hub id"):
        load_config(None, ["model=hf-ctc", "models.hf-ctc.pretrained=null"], check_data=False)


def test_cli_trains_from_a_folder_then_transcribe_bench_and_the_test_tab_load_it(pretrained, small_corpus, tmp_path, capsys):
    code = main(["train", "--root", str(tmp_path), "--model", "hf-ctc", "--set", f"models.hf-ctc.pretrained={pretrained}",
                 "--set", f"datasets.synthetic.path={small_corpus}", "--set", "training.max_steps=2",
                 "--set", "training.eval_utterances=4", "--set", "training.batch_size=4",
                 "--set", "training.extra_eval=[]", *(f"--set={s}" for s in NO_AUGMENTATION)])
    out, err = capsys.readouterr()
    assert code == 0, err
    run = Run(out.splitlines()[0])
    assert run.status["state"] == "finished" and run.status["model"] == "hf-ctc" and "finished: step 2" in out
    assert BaseASRModel.from_checkpoint(run.best_checkpoint).name == "hf-ctc"

    wav = next((small_corpus / "wavs").glob("*.wav"))
    code = main(["transcribe", str(run.best_checkpoint), str(wav)])
    assert code == 0 and capsys.readouterr().out.startswith(f"{wav}: ")
    system = load_system(str(run.best_checkpoint))  # bench: and its training-throughput run's config validates
    cfg = training_config("hf-ctc", system.model_section, None, [f"datasets.synthetic.path={small_corpus}"],
                          str(tmp_path), 2, None, None)
    assert cfg["models"]["hf-ctc"]["pretrained"] == str(pretrained)

    from asr_poc.ui.test_panel import TestPanel  # the Test tab transcribes an upload with it

    panel = TestPanel(root=tmp_path)
    try:
        assert panel.checkpoint.value in (str(run.best_checkpoint), str(run.last_checkpoint))
        data = wav.read_bytes()
        panel.upload.value = ({"name": "clip.wav", "type": "audio/wav", "size": len(data), "content": memoryview(data),
                               "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
        panel.submit(lambda: None).result(timeout=60)
        assert panel.last_result["source"] == "clip.wav" and panel.last_result["compute_seconds"] > 0
    finally:
        panel.close()
