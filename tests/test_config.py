"""Config loading, overrides, presets and one-line errors."""

import pytest

from asr_poc.config import ConfigError, load_config


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ASR_POC_ROOT", str(tmp_path))
    (tmp_path / "data" / "synthetic").mkdir(parents=True)
    (tmp_path / "data" / "synthetic" / "metadata.csv").write_text("a|b|b\n")
    return tmp_path


def errors(overrides, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides, **kw)
    return info.value.problems


def test_default_config_loads_and_fills_size_preset(data_dir):
    cfg = load_config()
    conformer = cfg["models"]["conformer"]
    assert conformer["encoder_dim"] == 144 and conformer["num_layers"] == 4
    assert cfg["training"]["batch_size"] == 16
    assert cfg["available_models"] == ["conformer", "rnn-t", "hf-ctc", "whisper-ctc", "whisper"]


def test_overrides_merge_and_size_preset_changes_dims(data_dir):
    cfg = load_config(None, ["training.batch_size=8", "models.conformer.size=s", "models.conformer.num_layers=3"])
    assert cfg["training"]["batch_size"] == 8
    assert cfg["models"]["conformer"]["encoder_dim"] == 256  # from the preset
    assert cfg["models"]["conformer"]["num_layers"] == 3  # explicit beats preset


def test_config_file_is_merged_over_default(data_dir, tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("training:\n  learning_rate: 0.0005\n")
    cfg = load_config(f)
    assert cfg["training"]["learning_rate"] == 0.0005 and cfg["training"]["epochs"] == 30


@pytest.mark.parametrize("override, expected", [
    ("training.batch_size=abc", "training.batch_size = 'abc'"),
    ("training.batch_size=-3", "training.batch_size = -3: Input should be greater than or equal to 1"),
    ("training.learning_rate=5", "training.learning_rate = 5"),
    ("training.optimizer=sgd", "training.optimizer = 'sgd': Input should be 'adam' or 'adamw'"),
    ("training.batch_sise=8", "training.batch_sise: unknown key (allowed: "),
    ("models.conformer.num_heads=5", "encoder_dim (144) must be divisible by num_heads (5)"),
    ("models.conformer.subsampling=3", "models.conformer.subsampling = 3"),
    ("models.conformer.input_dim=40", "models.conformer.input_dim = 40: must equal features.n_mels (80)"),
    ("datasets.synthetic.sample_rate=10", "datasets.synthetic.sample_rate = 10: differs from features.sample_rate"),
    ("features.sample_rate=10", "features.sample_rate = 10: Input should be greater than or equal to 4000"),
    ("features.normalize=mean", "features.normalize = 'mean': Input should be 'none', 'utterance' or 'causal'"),
])
def test_each_bad_value_names_key_value_and_rule(data_dir, override, expected):
    problems = errors([override])
    assert len(problems) == 1 and expected in problems[0], problems
    assert "\n" not in problems[0]


def test_model_not_in_available_list(data_dir):
    (problem,) = errors(["model=wav2letter"])
    assert problem == "model = 'wav2letter': not in available_models (conformer, rnn-t, hf-ctc, whisper-ctc, whisper)"


def test_dataset_not_in_available_list(data_dir):
    (problem,) = errors(["dataset=timit"])
    assert problem.startswith("dataset = 'timit': not in available_datasets (synthetic, ljspeech, hf, ")  # + plugins


def test_missing_data_folder(data_dir):
    (problem,) = errors(["datasets.synthetic.path=data/nowhere"])
    assert problem.startswith("datasets.synthetic.path = 'data/nowhere': folder does not exist")
    assert "asr-poc prepare synthetic" in problem
    load_config(None, ["datasets.synthetic.path=data/nowhere"], check_data=False)  # prepare does not need it


def test_several_problems_are_all_reported(data_dir):
    problems = errors(["training.batch_size=0", "training.epochs=0"])
    assert len(problems) == 2


def test_bad_override_syntax_and_bad_yaml(data_dir, tmp_path):
    assert "expected KEY=VALUE" in errors(["training.batch_size"])[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


# --- hostile configs (issue 8) --------------------------------------------------------------------------------------

def alias_bomb(levels: int = 9) -> str:
    """`[&a [lol x9], &b [*a x9], &c [*b x9], ...]`: a line of YAML that expands to 9**levels strings."""
    layers = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    layers += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return "[" + ", ".join(layers) + "]"


BOMB_CHECK = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GiB: the bomb expanded would need far more
from asr_poc.config import ConfigError, load_config
started = time.perf_counter()
try:
    load_config(sys.argv[1], check_data=False)
except ConfigError as err:
    print(f"{time.perf_counter() - started:.3f}", err)
"""


@pytest.mark.parametrize("section", ["training:\n  batch_size", "models:\n  conformer"])
def test_a_yaml_alias_bomb_is_refused_at_once_in_little_memory(tmp_path, section):
    import subprocess
    import sys

    path = tmp_path / "bomb.yaml"
    path.write_text(f"{section}: {alias_bomb()}\n")
    result = subprocess.run([sys.executable, "-c", BOMB_CHECK, str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    seconds, _, message = result.stdout.strip().partition(" ")
    assert float(seconds) < 1.0
    assert message == (f"config file {str(path)!r}: not valid YAML at line 2 (aliases (*name) are not allowed in "
                       f"asr-poc configs; write the value out)")


def test_an_alias_in_an_override_is_refused(data_dir):
    (problem,) = errors(["training.batch_size=[&a [1, 2], *a, *a]"])
    assert "aliases (*name) are not allowed" in problem


def test_an_unknown_key_lists_the_keys_of_its_own_section(data_dir):
    (problem,) = errors(["training.batch_sise=8"])
    assert problem.startswith("training.batch_sise: unknown key (allowed: augment_in, batch_seconds, batch_size, checkpoint_every, ")
    assert "available_models" not in problem
    (problem,) = errors(["colour=blue"])
    assert problem.startswith("colour: unknown key (allowed: available_datasets, available_models, ")


def test_printed_values_are_cut_short(data_dir):
    for override in ("training.batch_size=" + "9x" * 5000, "training.batch_size=[" + "1, " * 5000 + "1]",
                     "model=" + "m" * 5000):
        (problem,) = errors([override])
        assert len(problem) < 200 and "..." in problem, problem


def test_a_huge_config_file_is_refused_before_parsing(data_dir, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("training:\n  batch_size: 8\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="is too large for a config"):
        load_config(path)
