"""`asr-poc` from the command line: prepare, train, runs, stop, resume, eval and transcribe, and their errors."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from asr_poc.cli import main
from asr_poc.runs import Run
from conftest import TINY_MODEL


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_prepare_writes_an_ljspeech_folder(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "prepare", "synthetic", "--out", str(tmp_path / "s"), "--utterances", "12")
    assert code == 0 and out.strip() == str(tmp_path / "s")
    assert len((tmp_path / "s" / "metadata.csv").read_text().splitlines()) == 12


def test_train_prints_the_run_folder_then_runs_lists_it_and_resume_extends_it(small_corpus, tmp_path, capsys):
    sets = [f"--set=datasets.synthetic.path={small_corpus}", "--set=training.max_steps=2",
            "--set=training.eval_utterances=4", *(f"--set={s}" for s in TINY_MODEL)]
    code, out, err = run_cli(capsys, "train", "--root", str(tmp_path), *sets)
    assert code == 0, err
    run = Run(out.splitlines()[0])
    assert run.path.parent == tmp_path and run.status["state"] == "finished" and run.status["step"] == 2
    assert "finished: step 2" in out

    code, out, _ = run_cli(capsys, "runs", "--root", str(tmp_path), "--json")
    rows = json.loads(out)
    assert code == 0 and [r["run"] for r in rows] == [run.id] and rows[0]["state"] == "finished"
    code, out, _ = run_cli(capsys, "runs", "--root", str(tmp_path))
    assert run.id in out and "finished" in out

    code, _, err = run_cli(capsys, "train", "--root", str(tmp_path), "--resume", run.id, "--set", "model=rnn-t")
    assert code == 2 and "only training.* keys can change" in err
    code, out, err = run_cli(capsys, "train", "--root", str(tmp_path), "--resume", run.id,
                             "--set", "training.max_steps=4")
    assert code == 0, err
    assert [e["step"] for e in run.events("step")] == [1, 2, 3, 4]

    code, out, _ = run_cli(capsys, "stop", run.id, "--root", str(tmp_path))
    assert code == 0 and out.strip() == f"{run.id}: finished"


def test_config_errors_are_one_line_each_with_exit_status_2(small_corpus, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--root", str(tmp_path), "--set", "training.batch_size=-3",
                           "--set", "model=nomodel", "--set", "datasets.synthetic.path=/nonexistent")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2, err  # the model name is checked before the data folder
    assert lines[0] == "config error: training.batch_size = -3: Input should be greater than or equal to 1"
    code, _, err = run_cli(capsys, "train", "--root", str(tmp_path), "--set", "model=nomodel")
    assert err.strip() == ("config error: model = 'nomodel': not in available_models (conformer, rnn-t, hf-ctc, "
                           "whisper-ctc, whisper)")


def test_transcribe_gives_a_line_per_file_and_one_clear_line_per_bad_file(trained_run, learning_corpus, tmp_path,
                                                                          capsys):
    good = sorted((learning_corpus / "wavs").glob("*.wav"))[:2]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not audio, just words " * 20)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    files = [good[0], empty, text, nan, tmp_path / "missing.wav", good[1]]

    code, out, _ = run_cli(capsys, "transcribe", str(trained_run.best_checkpoint), *map(str, files))
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == len(files)
    assert lines[1] == f"{empty}: ERROR: empty file (0 bytes)"
    assert lines[2].startswith(f"{text}: ERROR: not audio")
    assert lines[3] == f"{nan}: ERROR: audio contains NaN or infinite samples"
    assert lines[4] == f"{tmp_path / 'missing.wav'}: ERROR: no such file: {tmp_path / 'missing.wav'}"
    for line, path in ((lines[0], good[0]), (lines[5], good[1])):
        assert line.startswith(f"{path}: ") and len(line) > len(f"{path}: ") + 5 and "ERROR" not in line

    code, out, _ = run_cli(capsys, "transcribe", "--json", str(trained_run.best_checkpoint), str(good[0]))
    result = json.loads(out)
    assert code == 0 and result["text"] and result["audio_seconds"] > 0.5 and 0 < result["rtf"] < 1


def test_eval_reports_wer_cer_and_rtf(trained_run, learning_corpus, capsys):
    code, out, err = run_cli(capsys, "eval", str(trained_run.best_checkpoint), "--dataset", "synthetic",
                             "--split", "test", "--json", "--set", f"datasets.synthetic.path={learning_corpus}")
    assert code == 0, err
    result = json.loads(out)
    assert result["utterances"] == 25 and 0 <= result["cer"] < 0.5 and 0 < result["rtf"] < 1
    assert result["rtfx"] == 1 / result["rtf"]


def test_a_checkpoint_that_is_not_one_gets_one_line(tmp_path, capsys):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"garbage")
    code, _, err = run_cli(capsys, "transcribe", str(bogus), str(tmp_path / "a.wav"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "not a readable checkpoint" in err
