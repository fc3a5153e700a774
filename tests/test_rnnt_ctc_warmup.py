"""`models.rnn-t.ctc_warmup_steps`: the first N training steps train the encoder and the CTC head only (the predictor
and joiner are neither run nor changed), then the whole transducer; the count is saved with the weights and a
resumed run continues it."""
from __future__ import annotations

import pytest
import torch

from asr_poc.cli import main
from asr_poc.config import ConfigError, load_config
from asr_poc.datasets.interface import collate_fn
from asr_poc.models.interface import BaseASRModel
from asr_poc.models.rnnt import EmformerRNNT, RNNTConfig
from asr_poc.runs import Run
from asr_poc.text import CharTokenizer

from test_rnnt import shortest_utterances

TINY = dict(encoder="conformer", encoder_dim=32, num_heads=2, num_layers=1, ffn_dim=64, kernel_size=3,
            subsampling_channels=8, predictor_dim=16, joiner_dim=32, dropout=0.0)


def build(items: list[dict], **overrides) -> EmformerRNNT:
    torch.manual_seed(0)
    vocab = CharTokenizer.from_texts([it["text"] for it in items]).vocab
    return EmformerRNNT({**RNNTConfig(**{**TINY, **overrides}).model_dump(), "vocab": vocab}).train()


def weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


def step(model: EmformerRNNT, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    optimizer.zero_grad(set_to_none=True)  # as the trainer: a parameter left out of the loss keeps grad None
    model(batch).backward()
    optimizer.step()


@pytest.fixture(scope="module")
def items(small_corpus):
    return shortest_utterances(small_corpus, 2)


def test_warmup_trains_the_encoder_alone_then_the_transducer(items, monkeypatch):
    model = build(items, ctc_warmup_steps=3)
    batch = collate_fn(items, model.tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)
    predictor, joiner, encoder = model.model.predictor, model.model.joiner, model.model.transcriber
    before = {"predictor": weights(predictor), "joiner": weights(joiner), "encoder": weights(encoder)}
    predict = model.model.predict
    calls = []
    monkeypatch.setattr(model.model, "predict", lambda *a: calls.append(1) or predict(*a))
    for _ in range(3):
        assert model.warming_up
        step(model, optimizer, batch)
    assert int(model.trained_steps) == 3 and not model.warming_up
    assert not calls  # the predictor (and so the joiner and rnnt_loss) never ran
    assert not changed(before["predictor"], predictor) and not changed(before["joiner"], joiner)
    assert changed(before["encoder"], encoder) and model.ctc_head.weight.grad is not None
    step(model, optimizer, batch)
    assert calls and changed(before["predictor"], predictor) and changed(before["joiner"], joiner)


def test_evaluation_neither_counts_nor_warms_up(items):
    model = build(items, ctc_warmup_steps=5)
    batch = collate_fn(items, model.tokenizer)
    model.eval()
    with torch.no_grad():
        eval_loss = float(model(batch))
    model.train()
    with torch.no_grad():
        float(model(batch))
    assert int(model.trained_steps) == 0
    warmup_loss = float(model(batch).detach())  # a training step: CTC only, a different loss from the evaluation's joint one
    assert int(model.trained_steps) == 1 and warmup_loss != pytest.approx(eval_loss)


def test_the_step_count_is_saved_and_a_checkpoint_without_it_is_past_warmup(items, tmp_path):
    model = build(items, ctc_warmup_steps=4)
    batch = collate_fn(items, model.tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(2):
        step(model, optimizer, batch)
    model.save_checkpoint(tmp_path / "r.pt")
    loaded = BaseASRModel.from_checkpoint(tmp_path / "r.pt")
    assert int(loaded.trained_steps) == 2 and loaded.warming_up
    state = model.checkpoint_state()
    del state["state_dict"]["trained_steps"]
    torch.save(state, tmp_path / "old.pt")
    old = BaseASRModel.from_checkpoint(tmp_path / "old.pt")
    assert not old.warming_up  # trained before the counter existed: jointly from its first step


@pytest.mark.parametrize("full_context", [True, False])
def test_the_warmup_attends_over_whole_utterances_unless_told_otherwise(items, monkeypatch, full_context):
    model = build(items, ctc_warmup_steps=2, ctc_warmup_full_context=full_context)
    transcriber = model.model.transcriber
    draws = []
    monkeypatch.setattr(transcriber, "training_chunk", lambda: draws.append(1) or 4)
    batch = collate_fn(items, model.tokenizer)
    for _ in range(2):
        model(batch)
    assert len(draws) == (0 if full_context else 2)  # a chunk drawn is a chunked attention mask
    model(batch)
    assert len(draws) == (1 if full_context else 3)  # the transducer trains on chunks


def test_warmup_needs_the_ctc_head():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model=rnn-t", "models.rnn-t.ctc_warmup_steps=10", "models.rnn-t.ctc_weight=0"],
                    check_data=False)
    assert any(p.startswith("models.rnn-t: ctc_warmup_steps (10) trains the CTC head") for p in err.value.problems), \
        err.value.problems


def test_a_resumed_run_continues_the_warmup(small_corpus, tmp_path, capsys):
    """Two steps of warm-up, stop, resume: the third is still warm-up (predictor unchanged), the fourth is not."""
    sets = [f"datasets.synthetic.path={small_corpus}", "training.max_steps=2", "training.eval_utterances=2",
            "training.batch_size=4", "training.warmup_steps=1", "training.extra_eval=[]",
            "datasets.synthetic.augment=null", "models.rnn-t.ctc_warmup_steps=3",
            *(f"models.rnn-t.{k}={v}" for k, v in TINY.items())]
    assert main(["train", "--model", "rnn-t", "--root", str(tmp_path), *(f"--set={s}" for s in sets)]) == 0
    run = Run(capsys.readouterr().out.splitlines()[0])

    def saved() -> EmformerRNNT:
        return BaseASRModel.from_checkpoint(run.last_checkpoint)

    first = saved()
    assert int(first.trained_steps) == 2 and first.warming_up
    for steps, warm in ((3, True), (4, False)):
        code = main(["train", "--resume", str(run.path), f"--set=training.max_steps={steps}"])
        assert code == 0, capsys.readouterr().err
        model = saved()
        assert int(model.trained_steps) == steps and model.warming_up is False
        assert changed(weights(first.model.predictor), model.model.predictor) is not warm, steps


def test_ctc_head_on_the_encoder_output(items):
    """`ctc_head_input: encoder`: the CTC head reads the encoder's own width; the warm-up trains it and the encoder,
    not the projection to the joiner; the joint loss then trains everything, and decoding is unchanged in kind."""
    model = build(items, ctc_warmup_steps=1, ctc_head_input="encoder", joiner_dim=48)
    assert model.ctc_head.in_features == TINY["encoder_dim"] and build(items).ctc_head.in_features == 32
    batch = collate_fn(items, model.tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.0)
    projection, head = model.model.transcriber.output, model.ctc_head
    before = {"projection": weights(projection), "head": weights(head)}
    step(model, optimizer, batch)  # the warm-up step: CTC on the encoder output only
    assert changed(before["head"], head) and not changed(before["projection"], projection)
    step(model, optimizer, batch)  # a joint step: the projection to the joiner trains now
    assert changed(before["projection"], projection)
    model.eval()
    assert len(model.transcribe(batch["waveforms"], batch["waveform_lengths"])) == len(items)
    with pytest.raises(ValueError, match="ctc_weight 0"):
        RNNTConfig(**{**TINY, "ctc_head_input": "encoder", "ctc_weight": 0.0})


def test_the_ten_minute_recipe_config_loads():
    """configs/rnnt-10min.yaml (the measured recipe) merges over the defaults and validates."""
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "rnnt-10min.yaml", check_data=False)
    assert cfg["model"] == "rnn-t"
    section = cfg["models"]["rnn-t"]
    assert (section["ctc_head_input"], section["ctc_warmup_steps"], section["encoder"], section["joiner_stride"]) == \
        ("encoder", 450, "conformer", 2)
