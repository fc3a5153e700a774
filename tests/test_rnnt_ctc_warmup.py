"""`models.rnn-t.ctc_warmup_steps`: the first N training steps train the encoder and the CTC head only (the predictor
and joiner are neither run nor changed), then the whole transducer. The steps are the trainer's (`batch["step"]`,
the run's global optimizer step, restored on resume); the model records only whether its transducer has trained."""
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


def step(model: EmformerRNNT, optimizer: torch.optim.Optimizer, batch: dict, at: int) -> None:
    """One optimizer step as the trainer makes it: `at` is the run's global step (`batch["step"]`)."""
    optimizer.zero_grad(set_to_none=True)  # as the trainer: a parameter left out of the loss keeps grad None
    model({**batch, "step": at}).backward()
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
    for at in range(3):
        assert model.warming_up and model.warmup_step(at) and model.leaves_parameters_unused
        step(model, optimizer, batch, at)
    assert model.warming_up and not model.warmup_step(3)  # the joiner has not trained yet: the CTC head decodes
    assert not calls  # the predictor (and so the joiner and rnnt_loss) never ran
    assert not changed(before["predictor"], predictor) and not changed(before["joiner"], joiner)
    assert changed(before["encoder"], encoder) and model.ctc_head.weight.grad is not None
    step(model, optimizer, batch, 3)
    assert calls and changed(before["predictor"], predictor) and changed(before["joiner"], joiner)
    assert not model.warming_up and not model.leaves_parameters_unused


def test_evaluation_does_not_warm_up(items):
    model = build(items, ctc_warmup_steps=5)
    batch = {**collate_fn(items, model.tokenizer), "step": 0}
    model.eval()
    with torch.no_grad():
        eval_loss = float(model(batch))
    model.train()
    with torch.no_grad():
        float(model(batch))  # no gradients: not a training step
    assert model.warming_up
    warmup_loss = float(model(batch).detach())  # a training step: CTC only, a different loss from the evaluation's joint one
    assert model.warming_up and warmup_loss != pytest.approx(eval_loss)


def test_the_warmup_follows_the_trainers_step_not_a_count_of_calls(items, monkeypatch):
    """Whether a training step warms up depends on `batch["step"]`: step 5 of a 5-step warm-up is a joint step
    however few forward passes this model made (a resumed run's), and without the trainer's step the warm-up goes on
    however many went before."""
    def joint_steps(model: EmformerRNNT) -> list:
        calls = []  # the predictor runs in joint steps only
        predict = model.model.predict
        monkeypatch.setattr(model.model, "predict", lambda *a: calls.append(1) or predict(*a))
        return calls

    model = build(items, ctc_warmup_steps=5)
    batch = collate_fn(items, model.tokenizer)
    calls = joint_steps(model)
    model({**batch, "step": 4})
    assert not calls and model.warming_up  # a warm-up step does not train the transducer
    model({**batch, "step": 5})
    assert calls and not model.warming_up
    fresh = build(items, ctc_warmup_steps=5)
    calls = joint_steps(fresh)
    for _ in range(7):
        fresh(batch)
    assert not calls and fresh.warming_up


def test_whether_the_transducer_trained_is_saved_and_older_checkpoints_load(items, tmp_path):
    model = build(items, ctc_warmup_steps=4)
    batch = collate_fn(items, model.tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    for at in range(2):
        step(model, optimizer, batch, at)
    model.save_checkpoint(tmp_path / "r.pt")
    assert BaseASRModel.from_checkpoint(tmp_path / "r.pt").warming_up
    step(model, optimizer, batch, 4)
    model.save_checkpoint(tmp_path / "r.pt")
    assert not BaseASRModel.from_checkpoint(tmp_path / "r.pt").warming_up
    state = model.checkpoint_state()
    del state["state_dict"]["transducer_trained"]
    torch.save(state, tmp_path / "before-the-counter.pt")
    assert not BaseASRModel.from_checkpoint(tmp_path / "before-the-counter.pt").warming_up  # jointly from step 1
    for count, warming_up in ((2, True), (4, False)):  # checkpoints that counted their steps in `trained_steps`
        state["state_dict"]["trained_steps"] = torch.tensor(count)
        torch.save(state, tmp_path / "counted.pt")
        assert BaseASRModel.from_checkpoint(tmp_path / "counted.pt").warming_up is warming_up


@pytest.mark.parametrize("full_context", [True, False])
def test_the_warmup_attends_over_whole_utterances_unless_told_otherwise(items, monkeypatch, full_context):
    model = build(items, ctc_warmup_steps=2, ctc_warmup_full_context=full_context)
    transcriber = model.model.transcriber
    draws = []
    monkeypatch.setattr(transcriber, "training_chunk", lambda: draws.append(1) or 4)
    batch = collate_fn(items, model.tokenizer)
    for at in range(2):
        model({**batch, "step": at})
    assert len(draws) == (0 if full_context else 2)  # a chunk drawn is a chunked attention mask
    model({**batch, "step": 2})
    assert len(draws) == (1 if full_context else 3)  # the transducer trains on chunks


def test_warmup_needs_the_ctc_head():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model=rnn-t", "models.rnn-t.ctc_warmup_steps=10", "models.rnn-t.ctc_weight=0"],
                    check_data=False)
    assert any(p.startswith("models.rnn-t: ctc_warmup_steps (10) trains the CTC head") for p in err.value.problems), \
        err.value.problems


def test_a_resumed_run_continues_the_warmup(small_corpus, tmp_path, capsys):
    """Two steps of warm-up, stop, resume: the third is still warm-up (predictor unchanged), the fourth is not, and a
    resume past the warm-up (step 4 onwards, from the run's global step in last.pt) does not warm up again."""
    sets = [f"datasets.synthetic.path={small_corpus}", "training.max_steps=2", "training.eval_utterances=2",
            "training.batch_size=4", "training.warmup_steps=1", "training.extra_eval=[]",
            "datasets.synthetic.augment=null", "models.rnn-t.ctc_warmup_steps=3",
            *(f"models.rnn-t.{k}={v}" for k, v in TINY.items())]
    assert main(["train", "--model", "rnn-t", "--root", str(tmp_path), *(f"--set={s}" for s in sets)]) == 0
    run = Run(capsys.readouterr().out.splitlines()[0])

    def saved() -> EmformerRNNT:
        return BaseASRModel.from_checkpoint(run.last_checkpoint)

    first = saved()
    assert first.warming_up
    previous = first
    for steps, warm in ((3, True), (4, False), (5, False)):
        code = main(["train", "--resume", str(run.path), f"--set=training.max_steps={steps}"])
        assert code == 0, capsys.readouterr().err
        model = saved()
        assert torch.load(run.last_checkpoint, weights_only=False)["step"] == steps
        assert model.warming_up is warm  # after step 3 (the last warm-up step) the joiner has not trained yet
        assert changed(weights(previous.model.predictor), model.model.predictor) is not warm, steps
        previous = model


def test_ctc_head_on_the_encoder_output(items):
    """`ctc_head_input: encoder`: the CTC head reads the encoder's own width; the warm-up trains it and the encoder,
    not the projection to the joiner; the joint loss then trains everything, and decoding is unchanged in kind."""
    model = build(items, ctc_warmup_steps=1, ctc_head_input="encoder", joiner_dim=48)
    assert model.ctc_head.in_features == TINY["encoder_dim"] and build(items).ctc_head.in_features == 32
    batch = collate_fn(items, model.tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.0)
    projection, head = model.model.transcriber.output, model.ctc_head
    before = {"projection": weights(projection), "head": weights(head)}
    step(model, optimizer, batch, 0)  # the warm-up step: CTC on the encoder output only
    assert changed(before["head"], head) and not changed(before["projection"], projection)
    step(model, optimizer, batch, 1)  # a joint step: the projection to the joiner trains now
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
