"""CLI manners: --version, --device auto, `config show`, a help text for every option, progress on many files."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from asr_poc import __version__
from asr_poc.cli import PROGRESS_MIN_FILES, build_parser, main, resolve_device


def walk(parser: argparse.ArgumentParser, path: tuple = ()):
    """(command path, action) of every option and argument, sub-commands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the sub-commands' own help lines
                yield path + (choice.dest,), choice
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_and_command_has_a_help_text():
    missing = [f"asr-poc {' '.join(path)} {'/'.join(a.option_strings) or a.dest}"
               for path, a in walk(build_parser()) if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert missing == [], "options without help: " + ", ".join(missing)
    assert len(list(walk(build_parser()))) > 60  # the walk reaches every sub-command


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"asr-poc {__version__}"


def test_eval_and_transcribe_default_to_auto_like_train():
    parser = build_parser()
    assert parser.parse_args(["eval", "x.pt"]).device == "auto"
    assert parser.parse_args(["transcribe", "x.pt", "a.wav"]).device == "auto"
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:1")


def test_config_show_prints_the_resolved_config(capsys):
    assert main(["config", "show", "--set", "training.batch_size=3", "--set", "model=rnn-t"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["training"]["batch_size"] == 3 and cfg["model"] == "rnn-t"
    from asr_poc.paths import DEFAULT_CONFIG

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())["models"]["rnn-t"]
    filled = [k for k in ("encoder_dim", "num_layers", "predictor_dim") if raw.get(k) is None]
    assert filled and all(cfg["models"]["rnn-t"][k] is not None for k in filled), "the size preset is filled in"
    assert main(["config", "show", "--set", "training.batch_size=-3"]) == 2
    assert capsys.readouterr().err.strip() == \
        "config error: training.batch_size = -3: Input should be greater than or equal to 1"


def tiny_checkpoint(path: Path) -> Path:
    from asr_poc.config import load_config
    from asr_poc.plugins import get_model_class
    from asr_poc.text import CharTokenizer
    from conftest import TINY_MODEL

    cfg = load_config(None, TINY_MODEL, check_data=False)
    get_model_class("conformer")({**cfg["models"]["conformer"], "vocab": CharTokenizer.from_texts(["ab c"]).vocab,
                                  "features": {"sample_rate": 16000, "n_fft": 400, "hop_length": 160,
                                               "n_mels": 80}}).save_checkpoint(path)
    return path


def test_transcribe_shows_progress_on_many_files(tmp_path: Path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "m.pt")
    files = []
    for i in range(PROGRESS_MIN_FILES + 1):
        files.append(tmp_path / f"{i}.wav")
        sf.write(str(files[-1]), np.random.default_rng(i).standard_normal(4000).astype(np.float32) * 0.1, 16000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    files.insert(2, tmp_path / "bad.wav")

    assert main(["transcribe", str(checkpoint), *map(str, files), "--device", "cpu"]) == 1  # one file is bad
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == list(map(str, files)), "a line per file, in order"
    assert "ERROR" in lines[2] and "transcribing" in err and f"{len(files)}/{len(files)}" in err

    assert main(["transcribe", str(checkpoint), str(files[0])]) == 0  # --device auto
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1 and "transcribing" not in err  # no bar for a few files


def test_bench_says_what_to_install_before_it_measures(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert main(["bench", "conformer:xs"]) == 2
    assert "pip install 'asr-poc[bench]'" in capsys.readouterr().err
