"""Your voice in ten minutes: a normal run that starts from a checkpoint and trains on the synthetic corpus mixed
with a person's own recordings (oversampled).

`adaptation_config` writes the config (dataset `mix`, `training.init_checkpoint`, a gentle constant learning
rate, the time limit); `create_adaptation_run` scores the starting checkpoint on the person's held-out clips (the
"before") and saves that as `adaptation.json` in the new run folder; `asr_poc.app.training.start` starts it like
any other run (a `RunRequest` with `adaptation`): it has curves, Stop and Resume. Its dev set is the person's
held-out clips, so its dev CER is the "after".
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from .config import deep_merge, validate_config
from .datasets.mix import part_config
from .datasets.recordings import DEFAULT_PATH as DEFAULT_RECORDINGS
from .datasets.recordings import RecordingsDataset, RecordingStore
from .evaluation import evaluate
from .io import atomic_write_text, load_yaml_text
from .models.interface import BaseASRModel
from .paths import resolve_path
from .plugins import get_dataset_class
from .runs import Run

ADAPTATION_FILE = "adaptation.json"
DEFAULT_MINUTES = 5.0
DEFAULT_REPEAT = 8  # each recording is seen at least this many times per pass over the synthetic corpus
RECORDINGS_SHARE = 0.25  # with repeat=None, the recordings make about this share of each epoch
DEFAULT_LEARNING_RATE = 1e-3  # constant: larger or decaying rates did worse on the voice from the default model
# (benchmarks/README.md, "Adaptation")
MODEL_LEARNING_RATE = {"whisper-ctc": 3e-4, "whisper": 1e-5}  # a pretrained encoder wants gentler steps: whisper-ctc
# adapts best at 3e-4 of the rates tried (benchmarks/README.md, "Adaptation, once more"); whisper (all pretrained)
# at configs/whisper-finetune.yaml's rate
DEFAULT_LR_SCHEDULE = "constant"
DEFAULT_WARMUP_STEPS = 20
DEFAULT_SPEC_AUGMENT: Optional[bool] = False  # off: better on the voice, the corpus and real-check at 750 steps
# (benchmarks/README.md, Adaptation); None keeps the base config's training.spec_augment
RECORDINGS_AUGMENT = {"speed": 0.6, "reverb": 0.4, "noise": 0.4, "band_limit": 0.3, "gain": 0.5}  # the few clips,
# oversampled, sound a little different each time they come round (asr_poc.augment, no ramp)
DEFAULT_AUGMENT_RECORDINGS = False  # off: the model needs the few recordings' clean sound more than variety, and
# augmenting them adapted worse to the voice (benchmarks/README.md, "Adaptation from a better start")
MIX_OF = ("mix", "recordings")  # data sets that cannot be the synthetic part of a mix


def checkpoint_model_name(checkpoint: str | os.PathLike) -> str:
    """The model plugin a checkpoint was trained with (from its run folder's config.yaml, else the file)."""
    path = resolve_path(checkpoint)
    run_config = path.parent / "config.yaml"
    if run_config.is_file():
        name = (load_yaml_text(run_config.read_text()) or {}).get("model")
        if name:
            return str(name)

    return BaseASRModel.from_checkpoint(path).name


def adaptation_config(base: dict, init_checkpoint: str | os.PathLike, *, speaker: Optional[str] = None,
                      minutes: Optional[float] = DEFAULT_MINUTES, max_steps: Optional[int] = None,
                      repeat: Optional[int] = None, learning_rate: Optional[float] = None,
                      share: float = RECORDINGS_SHARE, lr_schedule: str = DEFAULT_LR_SCHEDULE,
                      spec_augment: Optional[bool] = DEFAULT_SPEC_AUGMENT, warmup_steps: int = DEFAULT_WARMUP_STEPS,
                      augment_recordings: bool = DEFAULT_AUGMENT_RECORDINGS, check_data: bool = True) -> dict:
    """A validated run config: `base` trained from `init_checkpoint` on its corpus + `speaker`'s recordings.

    `learning_rate` None is the model's own (`MODEL_LEARNING_RATE`, else DEFAULT_LEARNING_RATE);
    `repeat` (None: enough for the recordings to make `share` of each epoch, at least DEFAULT_REPEAT)
    oversamples the recordings; `spec_augment` None keeps the base config's; `augment_recordings` gives the
    recordings RECORDINGS_AUGMENT unless their config has its own `augment`. The run's `recordings` set is the
    speaker's, and `training.extra_eval` scores it and the corpus's test split beside dev, so the curves show the
    voice improving and the corpus holding."""
    path = resolve_path(init_checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    corpus = base["dataset"] if base["dataset"] not in MIX_OF else "synthetic"
    recordings = dict(base["datasets"].get("recordings") or {"path": DEFAULT_RECORDINGS})
    recordings.update(speakers=[speaker] if speaker else [])
    if augment_recordings and not recordings.get("augment"):
        recordings["augment"] = dict(RECORDINGS_AUGMENT)
    features = {k: v for k, v in base["datasets"][corpus].items()
                if k in ("sample_rate", "n_fft", "hop_length", "n_mels", "max_seconds")}
    if repeat is None:
        repeat = auto_repeat(part_config(features, {"name": corpus, **base["datasets"][corpus]}), corpus,
                             part_config(features, {"name": "recordings", **recordings}), share)
    mix = {"parts": [{"name": corpus, **base["datasets"][corpus]},
                     {"name": "recordings", **recordings, "repeat": repeat}],
           "eval_part": "recordings", "eval_split": "test", **features}
    training = {"init_checkpoint": str(path), "max_minutes": minutes, "max_steps": max_steps,
                "learning_rate": learning_rate, "lr_schedule": lr_schedule,
                **({} if spec_augment is None else {"spec_augment": spec_augment}),
                "warmup_steps": warmup_steps,
                "eval_utterances": base["training"]["eval_utterances"] or 100}  # dev: the held-out clips
    model = checkpoint_model_name(path)
    if learning_rate is None:
        training["learning_rate"] = MODEL_LEARNING_RATE.get(model, DEFAULT_LEARNING_RATE)
    raw = deep_merge(base, {"model": model, "dataset": "mix", "training": training})
    raw["datasets"]["mix"] = mix  # replaced, not merged: the parts are these two
    raw["datasets"]["recordings"] = recordings  # this speaker's clips are the run's `recordings` set
    if "extra_eval" in raw["training"]:
        raw["training"]["extra_eval"] = list(dict.fromkeys([*raw["training"]["extra_eval"], "recordings", corpus]))
    for name in ("recordings", "mix"):
        if name not in raw["available_datasets"]:
            raw["available_datasets"] = [*raw["available_datasets"], name]
    return validate_config(raw, check_data=check_data)


def auto_repeat(corpus_config: dict, corpus: str, recordings_config: dict, share: float = RECORDINGS_SHARE) -> int:
    """Repeat factor that makes the recordings about `share` of an epoch (at least DEFAULT_REPEAT)."""
    if not 0 < share < 1:
        raise ValueError(f"the recordings' share of an epoch is {share}: it must be between 0 and 1")
    clips = len(RecordingsDataset(recordings_config, "train")) if resolve_path(recordings_config["path"]).is_dir() else 0
    try:
        utterances = len(get_dataset_class(corpus)(corpus_config, "train"))
    except (OSError, ValueError):  # the corpus is missing: validation says so
        return DEFAULT_REPEAT
    ratio = share / (1 - share)
    return max(DEFAULT_REPEAT, min(1000, round(ratio * utterances / clips))) if clips else DEFAULT_REPEAT


def voice_error_rates(checkpoint: str | os.PathLike, recordings: dict, speaker: Optional[str] = None,
                      split: str = "test") -> Optional[dict]:
    """WER/CER of `checkpoint` on `speaker`'s clips of `split` (None when there are none)."""
    model = BaseASRModel.from_checkpoint(resolve_path(checkpoint))
    config = {**recordings, "speakers": [speaker] if speaker else [], "sample_rate": model.sample_rate}
    dataset = RecordingsDataset(config, split)
    if len(dataset) == 0:
        return None
    result = evaluate(model, dataset)
    return {"wer": result["wer"], "cer": result["cer"], "rtf": result["rtf"], "utterances": result["utterances"]}


def create_adaptation_run(base: dict, init_checkpoint: str | os.PathLike, *, speaker: Optional[str] = None,
                          minutes: Optional[float] = DEFAULT_MINUTES, max_steps: Optional[int] = None,
                          repeat: Optional[int] = None, learning_rate: Optional[float] = None,
                          root: str | os.PathLike | None = None) -> Run:
    """Make the adaptation run's folder, with the "before" score in it; `asr_poc.app.training.start` starts it."""
    recordings = {**(base["datasets"].get("recordings") or {"path": DEFAULT_RECORDINGS}),
                  "speakers": [speaker] if speaker else []}
    if not RecordingStore(recordings["path"]).counts(speaker)["train"]:
        raise ValueError(f"no training recordings{f' of {speaker}' if speaker else ''} in {recordings['path']}: "
                         "record some sentences first")
    cfg = adaptation_config(base, init_checkpoint, speaker=speaker, minutes=minutes, max_steps=max_steps,
                            repeat=repeat, learning_rate=learning_rate)
    recordings = part_config(cfg["datasets"]["mix"], cfg["datasets"]["mix"]["parts"][1])
    before = voice_error_rates(init_checkpoint, recordings, speaker)
    run = Run.create(cfg, root=root)
    atomic_write_text(run.path / ADAPTATION_FILE, json.dumps(
        {"init_checkpoint": str(resolve_path(init_checkpoint)), "speaker": speaker, "before": before}, indent=2))
    if before is not None:  # the start of the run's `recordings` curve (and the Runs table's value until an eval)
        run.append_event({"type": "extra_eval", "dataset": "recordings", "step": 0, "epoch": 0, "before": True,
                          **before})
    return run


def adaptation_summary(run: Run) -> Optional[dict]:
    """{speaker, init_checkpoint, before, after} of an adaptation run (None for any other run).

    `after` is the run's best dev score so far: its dev set is the speaker's held-out clips.
    """
    path = Path(run.path) / ADAPTATION_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    status = run.status
    after = ({"cer": status["best_cer"], "wer": status.get("best_wer"), "step": status.get("step")}
             if status.get("best_cer") is not None else None)
    return {**info, "after": after}


# --- a stand-in for the person, offline (tests/test_adapt.py, benchmarks/adaptation.py) ------------------------

STAND_IN_VOICE = "en-us+Andy"  # an espeak-ng accent + voice variant that the synthetic corpus never uses
STAND_IN_SPEAKER = "stand-in"


def corpus_voices(corpus: str | os.PathLike) -> set[str]:
    """The voices (`engine:voice`, warp dropped) that speak a synthetic corpus (its voices.csv)."""
    rows = (resolve_path(corpus) / "voices.csv").read_text().splitlines()
    return {row.split("|")[1].split("@")[0] for row in rows if row.count("|") >= 3}


def stand_in_recordings(root: str | os.PathLike, *, voice: str = STAND_IN_VOICE, speaker: str = STAND_IN_SPEAKER,
                        train: int = 40, test: int = 10, seed: int = 2026,
                        corpus: str | os.PathLike | None = None) -> RecordingStore:
    """`train` + `test` sentences of the corpus grammar (seed `seed`), spoken by the espeak-ng `voice`, saved as
    `speaker`'s recordings under `root`: the first `train` to the train split, the rest to test.

    Raises ValueError when espeak-ng has no such voice variant (it would silently speak its default) or when
    `corpus` (a synthetic corpus folder) already has the voice: then it would not stand in for a new person."""
    import subprocess
    import tempfile

    from .audio import load_audio
    from .datasets.synthetic import SentenceGenerator
    from .datasets.voices.espeak import espeak_executable, speak_one

    exe = espeak_executable()
    variant = voice.split("+")[1] if "+" in voice else None
    listing = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    if variant and variant.lower() not in {line.split()[3].lower() for line in listing.splitlines()[1:]
                                           if len(line.split()) > 3}:
        raise ValueError(f"espeak-ng has no voice variant {variant!r}")
    if corpus is not None and f"espeak:{voice}" in corpus_voices(corpus):
        raise ValueError(f"the corpus {corpus} already has the voice {voice!r}: it cannot stand in for a new person")
    store, sentences = RecordingStore(root), SentenceGenerator(seed=seed)
    with tempfile.TemporaryDirectory(prefix="stand-in-") as tmp:
        for i in range(train + test):
            text, wav = sentences.sentence(), Path(tmp) / f"{i}.wav"
            speak_one(exe, text, voice, 160, 50, wav)
            store.add(load_audio(wav, 16000), text, speaker, split="train" if i < train else "test")
    return store
