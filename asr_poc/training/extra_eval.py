"""Extra evaluation sets (`training.extra_eval`): after every dev evaluation, score each one's test split.

Real speech is the number a run is judged by, so the default names `real-check` (real recordings shipped in the
package) and `recordings` (people's own, from the dashboard). A set whose folder is missing or whose test split
is empty is left out with one line at the start; a set that fails while scoring is reported and left out from
then on, and training goes on. Each score becomes an event

    {"type": "extra_eval", "dataset": "real-check", "step": ..., "epoch": ..., "wer": ..., "cer": ..., "rtf": ...,
     "utterances": ...}

beside the dev `eval` events (which stay as they were; best.pt is still chosen by dev CER).
"""
from __future__ import annotations

from typing import Callable

from ..config import validate_section
from ..evaluation import evaluate
from ..plugins import PluginNotFound, get_dataset_class

MAX_UTTERANCES = 200  # of each set's test split, per evaluation


def _log(emit: Callable[[dict], None], message: str, level: str = "info") -> None:
    emit({"type": "log", "level": level, "message": message})


def load_extra_sets(cfg: dict, sample_rate: int, emit: Callable[[dict], None]) -> dict:
    """{name: test split} of the `training.extra_eval` sets that can be read now, at the model's `sample_rate`.

    Each set left out gets one log line saying why."""
    sets = {}
    for name in cfg["training"].get("extra_eval") or []:
        section = cfg["datasets"].get(name)
        if section is None:
            _log(emit, f"extra_eval: {name!r} left out: no datasets.{name} section")
            continue
        try:
            dataset_cls = get_dataset_class(name)
            section, problems = validate_section(dataset_cls.Config, section, f"datasets.{name}")
            problem = "; ".join(problems) or dataset_cls.check_source(section)
            if problem:
                _log(emit, f"extra_eval: {name!r} left out: {problem}")
                continue
            test = dataset_cls({**section, "sample_rate": sample_rate}, "test")
        except (PluginNotFound, OSError, ValueError) as err:
            _log(emit, f"extra_eval: {name!r} left out: {err}")
            continue
        if len(test) == 0:
            _log(emit, f"extra_eval: {name!r} left out: its test split is empty")
            continue
        sets[name] = test
    if sets:
        _log(emit, "extra_eval: scoring " + ", ".join(f"{n} ({len(d)} test utterances)" for n, d in sets.items()))
    return sets


def score_extra_sets(model, sets: dict, step: int, epoch: int, emit: Callable[[dict], None]) -> dict:
    """Score `model` on each set, emit one `extra_eval` event per set and return {name: metrics}.

    A set that raises is reported once, removed from `sets`, and training goes on."""
    results = {}
    for name, dataset in list(sets.items()):
        try:
            metrics = evaluate(model, dataset, limit=MAX_UTTERANCES)
        except Exception as err:  # noqa: BLE001 - a broken extra set must not end the run
            _log(emit, f"extra_eval: {name!r} left out from now on: {type(err).__name__}: {err}", "warning")
            del sets[name]
            continue
        results[name] = metrics
        emit({"type": "extra_eval", "dataset": name, "step": step, "epoch": epoch, "utterances": metrics["utterances"],
              **{k: metrics[k] for k in ("wer", "cer", "rtf")}})
    return results
