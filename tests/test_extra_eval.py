"""`training.extra_eval`: every run is also scored on real speech, in events beside the dev evaluations; the
dashboard, `asr-poc eval` and `asr-poc bench` show and measure it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_config

from asr_poc.config import ConfigError
from asr_poc.datasets.real_check import prepare
from asr_poc.runs import Run
from asr_poc.training.extra_eval import load_extra_sets, score_extra_sets
from asr_poc.training.trainer import train


@pytest.fixture(scope="module")
def real_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("real-check"))


FIRST_TWELVE = "datasets.real-check.groups=[librivox-austen, cmu]"  # the set's first 12 clips: keeps these tests fast


def _config(small_corpus, root, real_check, *more):
    return tiny_config(small_corpus, root, "training.epochs=2", "training.eval_utterances=5",
                       f"datasets.real-check.path={real_check}", FIRST_TWELVE,
                       f"datasets.recordings.path={root / 'no-recordings'}",
                       "training.extra_eval=[real-check, recordings]", *more)


@pytest.fixture(scope="module")
def scored_run(small_corpus, real_check, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A tiny conformer trained for two epochs, scored on real-check after each (recordings is missing)."""
    run = Run.create(_config(small_corpus, tmp_path_factory.mktemp("runs"), real_check))
    assert train(run)["state"] == "finished"
    return run


def test_a_run_writes_real_check_scores_after_each_evaluation_and_skips_missing_sets(scored_run):
    run = scored_run
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


def test_an_empty_extra_eval_scores_nothing_and_says_nothing(small_corpus, tmp_path, real_check):
    events = []
    sets = load_extra_sets(_config(small_corpus, tmp_path, real_check, "training.extra_eval=[]"), 16000, events.append)
    assert sets == {} and events == []


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


def test_history_and_run_browser_show_a_column_per_set_at_the_best_dev_evaluation(scored_run):
    from asr_poc.ui.history import RunHistory
    from asr_poc.ui.run_browser import RunBrowser, table_columns

    history = RunHistory()
    assert "extra" in history.extend(scored_run.events())
    steps, _, cers = history.extra_series()["real-check"]
    assert steps == history.eval_steps and len(cers) == 2
    best = history.extra_at_best()["real-check"]
    assert best["step"] == history.best_eval["step"]

    assert [n for n, _ in table_columns(["real-check", "recordings"])][6:10] == [
        "best CER", "best WER", "real-check CER", "recordings CER"]
    browser = RunBrowser(root=scored_run.root, refresh_every=None, extra_eval=["real-check", "recordings"])
    try:
        header = " ".join(c.value for c in browser.children[2].children)
        assert "real-check CER" in header and "recordings CER" in header
        cells = [c.value for c in browser.rows[scored_run.id].cells]
        assert cells[7:9] == [f"{best['cer']:.3f}", "–"]  # recordings: never scored
        browser.speed_source.value = "real-check"  # the accuracy-vs-speed plot on real speech
        assert list(browser.speed_points.y) == [pytest.approx(best["cer"])]
    finally:
        browser.close()


def test_the_training_panel_plots_real_check_beside_dev_cer(scored_run):
    from asr_poc.ui.training_panel import TrainingPanel

    panel = TrainingPanel(overrides=[f"checkpoint_dir={scored_run.root}"])
    try:
        assert panel.run == scored_run
        assert panel.eval_chart.point_count("CER") == 2 and panel.eval_chart.point_count("real-check CER") == 2
    finally:
        panel.close()


def test_eval_and_bench_score_a_checkpoint_and_pocketsphinx_on_real_check(scored_run, real_check, tmp_path, capsys):
    from asr_poc.cli import main
    from asr_poc.results import accuracy_speed_points

    data = f"datasets.real-check.path={real_check}"
    assert main(["eval", str(scored_run.best_checkpoint), "--dataset", "real-check", "--json", "--set", data,
                 "--set", FIRST_TWELVE]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "real-check" and result["utterances"] == 12 and result["cer"] >= 0

    out = tmp_path / "results"
    assert main(["bench", str(scored_run.path), "--dataset", "real-check", "--repeats", "1", "--threads", "1",
                 "--batch-size", "1", "--no-training", "--no-streaming", "--out", str(out), "--name", "real",
                 "--root", str(scored_run.root), "--json", "--set", data, "--set", FIRST_TWELVE]) == 0
    bench = json.loads(capsys.readouterr().out)
    system, base = bench["systems"][0], bench["baseline"]
    assert bench["corpus"]["dataset"] == "real-check" and bench["corpus"]["utterances"] == 12
    assert [t["id"] for t in system["transcripts"]] == [t["id"] for t in base["transcripts"]]  # the same files
    assert base["available"] and base["cer"] < 0.5  # PocketSphinx understands real people (CER ~0.2)
    (whisper,) = bench["references"]  # Whisper tiny.en on the same files, beside PocketSphinx
    assert whisper["name"] == "whisper-tiny.en" and whisper["available"] and whisper["kind"] == "reference"
    assert [t["id"] for t in whisper["transcripts"]] == [t["id"] for t in base["transcripts"]]
    assert whisper["cer"] < base["cer"] and whisper["ratios"]["cer"] < 1  # the bar: better than PocketSphinx
    assert whisper["speed"]["batch1"]["threads=1"]["call_ms_p95"] > 0  # end-of-speech latency

    on_real = accuracy_speed_points(scored_run.root, results_dir=out, dataset="real-check")
    assert {p["kind"] for p in on_real} == {"run", "baseline"}
    assert [p["cer"] for p in on_real if p["kind"] == "run"] == [pytest.approx(system["cer"])]
    elsewhere = accuracy_speed_points(scored_run.root, results_dir=out, exclude_datasets=["real-check"])
    assert [p["kind"] for p in elsewhere] == ["run"] and elsewhere[0]["cer"] == scored_run.status["best_cer"]


def test_bench_measures_training_throughput_on_the_training_corpus_not_on_an_evaluation_set():
    from asr_poc.bench.runner import BenchOptions, _dataset_override

    assert _dataset_override(BenchOptions(dataset="real-check")) == []
    assert _dataset_override(BenchOptions(dataset="ljspeech")) == ["dataset=ljspeech"]
    assert _dataset_override(BenchOptions()) == []
