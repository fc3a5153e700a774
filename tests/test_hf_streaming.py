"""`datasets.hf.streaming`: splits opened as streams, only their first `streaming_utterances` rows read, on tiny
local data sets in layouts Hugging Face streams (an audiofolder, a folder of parquet files) and a stand-in hub."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from pydantic import ValidationError

from asr_poc.datasets.hf import HFConfig, HFDataset
from asr_poc.datasets.interface import DatasetConfig, DurationBucketSampler
from asr_poc.datasets.ljspeech import hash_split


def tone(index: int, rate: int = 16000) -> np.ndarray:
    """A distinct short tone per utterance (0.3 s + 0.05 s per index)."""
    t = np.arange(int((0.3 + 0.05 * index) * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * index) * t)).astype(np.float32)


def wav_bytes(index: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(index), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def config(path, **extra) -> dict:
    return {**DatasetConfig(path=str(path)).model_dump(), "text_column": "transcription", **extra}


def table(ids: list[str], first: int = 0, path_only: list[str] | None = None):
    import datasets

    features = datasets.Features({"id": datasets.Value("string"), "audio": datasets.Audio(),
                                  "transcription": datasets.Value("string")})
    audio = ([{"bytes": None, "path": p} for p in path_only] if path_only else
             [{"bytes": wav_bytes(first + i), "path": None} for i in range(len(ids))])
    return datasets.Dataset.from_dict({"id": ids, "audio": audio,
                                       "transcription": [f"utterance {u} said" for u in ids]}, features=features)


@pytest.fixture()
def parquet_folder(tmp_path: Path) -> Path:
    """A hub repository's layout without configs: one parquet file per split, named by split."""
    folder = tmp_path / "parquet"
    (folder / "data").mkdir(parents=True)
    for name, count, first in (("train", 7, 0), ("validation", 4, 7), ("test", 5, 11)):
        table([f"{name[:2]}{i}" for i in range(count)], first).to_parquet(
            str(folder / "data" / f"{name}-00000-of-00001.parquet"))
    return folder


def same_items(streamed: HFDataset, whole: list) -> None:
    assert [(u.id, u.text, u.audio) for u in streamed.items] == [(u.id, u.text, u.audio) for u in whole]
    assert streamed.durations() == pytest.approx([u.duration for u in whole])


def test_streamed_parquet_splits_are_the_first_rows_of_the_whole(parquet_folder: Path):
    for split, n in (("train", 3), ("dev", 2), ("test", 5)):
        whole = HFDataset(config(parquet_folder), split)
        streamed = HFDataset(config(parquet_folder, streaming=True, streaming_utterances=n), split)
        assert len(streamed) == n and len(whole) > n - 1
        same_items(streamed, whole.items[:n])
        assert isinstance(streamed.items[0].audio, bytes)
        assert torch.equal(streamed[n - 1]["waveform"], whole[n - 1]["waveform"])
        prefix = {"train": "tr", "dev": "va", "test": "te"}[split]
        assert streamed.items[0].text == f"utterance {prefix}0 said"
        assert streamed[0]["text"] == whole[0]["text"] == f"utterance {prefix} said"  # digits dropped by default
        assert abs(len(streamed[0]["waveform"]) / 16000 - streamed.items[0].duration) < 0.01
    more = HFDataset(config(parquet_folder, streaming=True, streaming_utterances=100), "train")
    assert [u.id for u in more.items] == [f"tr{i}" for i in range(7)]  # a stream shorter than N: all of it
    batches = list(DurationBucketSampler(more.durations(), batch_size=2, seed=0))
    assert sorted(i for b in batches for i in b) == list(range(7))


def test_streamed_audiofolder_carves_missing_splits_from_the_first_rows(tmp_path: Path):
    folder = tmp_path / "audiofolder"
    folder.mkdir()
    names = [f"a{i:03d}" for i in range(24)]
    for i, name in enumerate(names):
        sf.write(str(folder / f"{name}.wav"), tone(i), 16000, subtype="PCM_16")
    (folder / "metadata.csv").write_text("file_name,transcription\n" + "".join(f"{n}.wav,words of {n}\n"
                                                                              for n in names))
    carved = {s: [n for n in names if hash_split(n) == s] for s in ("dev", "test")}
    assert carved == {"dev": ["a016"], "test": ["a005"]}  # the ids were chosen so that both splits get one
    for split in ("train", "dev", "test"):  # all rows streamed: the same utterances as the whole folder
        whole = HFDataset(config(folder), split)
        same_items(HFDataset(config(folder, streaming=True, streaming_utterances=24), split), whole.items)
        assert isinstance(whole.items[0].audio, str) and Path(whole.items[0].audio).is_file()
    n = 10  # a016 (dev) lies beyond the first 10 rows: dev is empty
    streamed = {s: HFDataset(config(folder, streaming=True, streaming_utterances=n), s)
                for s in ("train", "dev", "test")}
    ids = {s: [u.id for u in ds.items] for s, ds in streamed.items()}
    assert sorted(sum(ids.values(), [])) == names[:n]  # the first n rows, each in the split its hash gives
    assert ids["test"] == ["a005"] and ids["dev"] == [] and len(streamed["train"]) == n - 1
    assert streamed["train"].items[0].text == f"words of {ids['train'][0]}" == "words of a000"


def test_streaming_errors(parquet_folder: Path, tmp_path: Path):
    import datasets

    datasets.DatasetDict({"train": table(["a", "b"])}).save_to_disk(str(tmp_path / "saved"))
    cfg = config(tmp_path / "saved", streaming=True)
    with pytest.raises(ValueError, match="save_to_disk cannot be streamed") as err:
        HFDataset(cfg, "train")
    assert "\n" not in str(err.value)
    assert "cannot be streamed" in HFDataset.check_source(HFConfig.model_validate(cfg).model_dump())
    assert HFDataset.check_source(config(tmp_path / "saved")) is None
    assert [u.id for u in HFDataset(config(tmp_path / "saved"), "train").items if hash_split(u.id) == "train"]

    from asr_poc.config import ConfigError, load_config

    base = ["dataset=hf", f"datasets.hf.path={tmp_path / 'saved'}", "datasets.hf.streaming=true"]
    with pytest.raises(ConfigError, match="datasets.hf.streaming_utterances"):
        load_config(None, base + ["datasets.hf.streaming_utterances=0"])
    with pytest.raises(ConfigError, match="save_to_disk cannot be streamed"):
        load_config(None, base)
    cfg_ok = load_config(None, ["dataset=hf", f"datasets.hf.path={parquet_folder}", "datasets.hf.streaming=true"])
    assert cfg_ok["datasets"]["hf"]["streaming"] is True and cfg_ok["datasets"]["hf"]["streaming_utterances"] == 1000
    for bad in (0, -3):
        with pytest.raises(ValidationError, match="streaming_utterances"):
            HFConfig.model_validate(config(parquet_folder, streaming=True, streaming_utterances=bad))
    assert HFConfig.model_validate(config(parquet_folder, streaming=True)).streaming_utterances == 1000
    with pytest.raises(ValidationError, match="streaming"):
        HFConfig.model_validate(config(parquet_folder, streaming="sometimes"))

    only_test = tmp_path / "only-test"
    only_test.mkdir()
    table(["e1", "e2"]).to_parquet(str(only_test / "test.parquet"))
    with pytest.raises(ValueError, match="no split 'validation' and no train split to carve it from; splits: test"):
        HFDataset(config(only_test, streaming=True, streaming_utterances=2), "dev")
    with pytest.raises(ValueError, match="no column 'sentence'.*id, audio, transcription"):
        HFDataset(config(parquet_folder, streaming=True, text_column="sentence"), "test")


def test_a_hub_split_is_streamed_and_remote_audio_read_once(tmp_path: Path, monkeypatch):
    """A stand-in for the hub: `load_dataset` must be asked for a stream; rows carry remote paths (fsspec's
    in-memory file system standing in for `hf://`) whose bytes are fetched into memory."""
    import datasets
    import fsspec

    memory = fsspec.filesystem("memory")
    monkeypatch.setattr(type(memory), "store", {})  # the class-wide store, restored afterwards
    monkeypatch.setattr(type(memory), "pseudo_dirs", [""])
    wavs = [f"memory://big_corpus/clip{i}.wav" for i in range(6)]
    for i, url in enumerate(wavs):
        memory.pipe(url, wav_bytes(i))
    source = {"train": table([f"c{i}" for i in range(6)], path_only=wavs), "validation": table(["d1"]),
              "test": table(["e1"])}
    calls = []

    def load_dataset(path, name=None, revision=None, split=None, streaming=False, **kw):
        calls.append((path, name, split, streaming))
        return source[split].to_iterable_dataset() if streaming else source[split]

    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda *a, **kw: list(source))
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.chdir(tmp_path)  # no local folder "someone"
    cfg = config("someone/big_corpus", config_name="en", streaming=True, streaming_utterances=4)
    train = HFDataset(cfg, "train")
    assert calls == [("someone/big_corpus", "en", "train", True)]
    assert [u.id for u in train.items] == ["c0", "c1", "c2", "c3"]
    assert [u.audio for u in train.items] == [wav_bytes(i) for i in range(4)]
    assert train.durations() == pytest.approx([0.3 + 0.05 * i for i in range(4)], abs=1e-3)
    assert len(train[3]["waveform"]) == len(tone(3))


# --- streaming_windows: the train split walks through the whole stream, one window an epoch ------------------------

def test_windows_walk_through_the_stream_and_start_again(parquet_folder: Path):
    """7 train rows, windows of 3: epochs 0-2 read rows 0-2, 3-5, 6; epoch 3 starts again at 0; a data set made
    fresh (a resumed run) for epoch 4 reads window 1, counting the stream's rows once to know where it wraps."""
    cfg = config(parquet_folder, streaming=True, streaming_utterances=3, streaming_windows=True)
    train = HFDataset(cfg, "train")
    ids = [[u.id for u in train.items]]
    for epoch in (1, 2, 3):
        assert train.start_epoch(epoch)
        ids.append([u.id for u in train.items])
    assert ids == [["tr0", "tr1", "tr2"], ["tr3", "tr4", "tr5"], ["tr6"], ["tr0", "tr1", "tr2"]]
    assert train.windows == 3 and not train.start_epoch(3)  # the same window: nothing to do
    resumed = HFDataset(cfg, "train")
    assert resumed.start_epoch(4) and resumed.windows == 3 and [u.id for u in resumed.items] == ["tr3", "tr4", "tr5"]
    whole = HFDataset(config(parquet_folder), "train")
    assert torch.equal(resumed[0]["waveform"], whole[3]["waveform"])
    dev = HFDataset(cfg, "dev")  # dev and test keep their first rows
    assert not dev.start_epoch(1) and [u.id for u in dev.items] == ["va0", "va1", "va2"]
    with pytest.raises(ValidationError, match="set streaming: true"):
        HFConfig.model_validate({"path": str(parquet_folder), "streaming_windows": True})


def test_the_trainer_trains_on_each_window_and_resumes_exactly(parquet_folder: Path, tmp_path: Path):
    """A tiny run over windows of 4 rows (batch 2): 4 epochs are 2 + 2 + 2 + 2 steps over windows 0, 1, 0, 1; the
    same run stopped after 3 steps (inside epoch 2, window 1) and resumed ends with the same weights."""
    from asr_poc.config import load_config
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train
    from tests.conftest import NO_EXTRA_EVAL, TINY_MODEL

    def run_config(*overrides: str) -> dict:
        return load_config(None, ["dataset=hf", f"datasets.hf.path={parquet_folder}",
                                  "datasets.hf.text_column=transcription", "datasets.hf.streaming=true",
                                  "datasets.hf.streaming_utterances=4", "datasets.hf.streaming_windows=true",
                                  f"checkpoint_dir={tmp_path}", "training.batch_size=2", "training.eval_utterances=0",
                                  "training.warmup_steps=1", NO_EXTRA_EVAL, *TINY_MODEL, *overrides])

    straight = Run.create(run_config("training.epochs=4"))
    assert train(straight)["state"] == "finished"
    windows = [e["message"] for e in straight.events("log") if "of the stream" in e["message"]]
    assert [m.split(":")[0] for m in windows] == ["epoch 2", "epoch 3", "epoch 4"], windows
    assert "3 utterances, window 1" in windows[0] and "4 utterances, window 0" in windows[1]
    steps = len(straight.events("step"))
    assert steps == 2 + 2 + 2 + 2, steps  # windows of 4 and 3 rows, batches of 2

    split = Run.create(run_config("training.epochs=4", "training.max_steps=3"))
    assert train(split)["state"] == "finished"
    split.override_training(["training.max_steps=null"])
    assert train(split, resume=True)["state"] == "finished"
    assert [e["step"] for e in split.events("step")] == list(range(1, steps + 1))
    a = torch.load(straight.last_checkpoint, weights_only=False)["state_dict"]
    b = torch.load(split.last_checkpoint, weights_only=False)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
