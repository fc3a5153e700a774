"""`training.extra_eval`: every run is also scored on real speech, in events beside the dev evaluations."""
from __future__ import annotations

from pathlib import Path

import pytest

from asr_poc.config import ConfigError
from asr_poc.datasets.real_check import prepare
from asr_poc.training.extra_eval import load_extra_sets, score_extra_sets
from asr_poc.training.run import Run
from asr_poc.training.trainer import train
from conftest import tiny_config


@pytest.fixture(scope="module")
def real_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("real-check"))


def _config(small_corpus, root, real_check, *more):
    return tiny_config(small_corpus, root, "training.epochs=2", "training.eval_utterances=5",
                       f"datasets.real-check.path={real_check}", f"datasets.recordings.path={root / 'no-recordings'}",
                       "training.extra_eval=[real-check, recordings]", *more)


def test_a_run_writes_real_check_scores_after_each_evaluation_and_skips_missing_sets(small_corpus, tmp_path,
                                                                                    real_check):
    run = Run.create(_config(small_corpus, tmp_path, real_check))
    assert train(run)["state"] == "finished"

    extra = run.events("extra_eval")
    dev = run.events("eval")
    assert [e["dataset"] for e in extra] == ["real-check", "real-check"]  # one per epoch; recordings is missing
    assert [e["step"] for e in extra] == [e["step"] for e in dev]
    for e in extra:
        assert 0 <= e["cer"] and 0 <= e["wer"] and e["rtf"] > 0 and e["utterances"] == 12
    assert all("dataset" not in e for e in dev)  # the dev events stay as existing readers know them
    messages = [e["message"] for e in run.events("log")]
    assert sum("extra_eval: 'recordings' left out" in m for m in messages) == 1
    assert any("scoring real-check (12 test utterances)" in m for m in messages)
    assert run.status["best_cer"] == min(e["cer"] for e in dev)  # best.pt is still chosen by dev CER


def test_no_extra_eval_means_no_extra_events(small_corpus, tmp_path, real_check):
    run = Run.create(_config(small_corpus, tmp_path, real_check, "training.extra_eval=[]", "training.epochs=1"))
    assert train(run)["state"] == "finished"
    assert run.events("eval") and not run.events("extra_eval")


def test_an_unknown_extra_eval_name_is_a_config_error(small_corpus, tmp_path, real_check):
    with pytest.raises(ConfigError, match="training.extra_eval: 'nope' is not an entry of `datasets`"):
        _config(small_corpus, tmp_path, real_check, "training.extra_eval=[nope]")


def test_a_set_that_breaks_while_scoring_is_dropped_with_one_warning(small_corpus, tmp_path, real_check):
    cfg = _config(small_corpus, tmp_path, real_check, "training.extra_eval=[real-check]")
    events = []
    sets = load_extra_sets(cfg, 16000, events.append)
    assert list(sets) == ["real-check"] and len(sets["real-check"]) == 12

    class Broken:
        sample_rate, device, training = 16000, "cpu", False

        def eval(self):
            return self

        def train(self, mode=True):
            return self

        def transcribe(self, waveforms, lengths):
            raise RuntimeError("decoder exploded")

    assert score_extra_sets(Broken(), sets, step=3, epoch=1, emit=events.append) == {}
    assert sets == {} and not [e for e in events if e["type"] == "extra_eval"]
    assert [e["message"] for e in events if e.get("level") == "warning"] == [
        "extra_eval: 'real-check' left out from now on: RuntimeError: decoder exploded"]
