"""A training run is a folder, `<checkpoint_dir>/<run_id>/`, that any number of readers can follow:

    config.yaml     the resolved config the run trains with
    events.jsonl    append-only, one JSON object a line; each has `type` and `time` (unix seconds):
                      step        {step, epoch, loss, lr, audio_seconds_per_second, grad_norm}
                      eval        {step, epoch, wer, cer, rtf}
                      checkpoint  {path, step, epoch, kind: epoch | last | best}
                      status      {state, error?}
                      extra_eval  {dataset, step, epoch, wer, cer, rtf, utterances}
                      log         {level: info | warning | error, message}; the start's also {batches_per_epoch}
    status.json     state, pid, hostname, started, updated (the heartbeat), step, epoch, best_cer, best_wer,
                    error, model, dataset, num_parameters, batches_per_epoch (times are unix seconds)
    STOP            present while a stop is requested
    log.txt         stdout and stderr of a background process
    epoch-N.pt, last.pt, best.pt    checkpoints (see `asr_poc.training.trainer`)

The trainer writes, everyone else reads. Files are replaced atomically, except events.jsonl, which is only
appended to; readers skip a partial last line, so a follower never sees half an event. Every reader goes through
`read_event_lines`, which skips (and counts) lines that are not events: invalid UTF-8, JSON that is not an object,
known fields of the wrong type. status.json is read-merged-written under a file lock (`.status.lock`), so the
launcher and the training process never lose each other's fields. One run trains per runs folder
(`asr_poc.training.run_lock`, taken only by whoever trains).

This module is the ground floor: it imports nothing of the project but `paths` and `io`. Changing a run's
config (`Run.override_training`) needs the config's validation, which stands above; `asr_poc.config` hands it
down with `set_config_editor` when it is imported.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import yaml

from .io import append_json_line, atomic_write_json, atomic_write_text, drop_partial_line, dump_yaml, \
    load_yaml_text, read_complete_lines
from .paths import resolve_path

ACTIVE_STATES = ("running", "stopping")
HEARTBEAT_TIMEOUT = 60.0  # seconds without a status update after which a run counts as interrupted
DEFAULT_ROOT = "checkpoints"

_status_lock = threading.Lock()  # the training loop and its heartbeat thread both write status.json
_NUMBER_FIELDS = ("time", "step", "epoch", "loss", "lr", "audio_seconds_per_second", "grad_norm", "wer", "cer", "rtf")
_TEXT_FIELDS = ("type", "state", "error", "level", "message", "path", "kind")


def parse_event(line: bytes) -> Optional[dict]:
    """One events.jsonl line as an event, or None if it is not one (bad UTF-8, not an object, wrong field types)."""
    try:
        event = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    for key in _NUMBER_FIELDS:
        value = event.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or abs(value) > 2 ** 62):
            return None
    if any(event.get(key) is not None and not isinstance(event[key], str) for key in _TEXT_FIELDS):
        return None
    return event


def read_event_lines(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int, int]:
    """(events after byte `offset`, the offset to pass next time, lines skipped as not events).

    A partial last line (still being written) is left for the next call; an empty line is not counted."""
    lines, new_offset = read_complete_lines(path, offset)
    events = [e for e in map(parse_event, lines) if e is not None]
    return events, new_offset, len(lines) - len(events)


class RunConfigError(ValueError):
    """A run's config.yaml cannot be used, or a change to it is refused; `problems` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


ConfigEditor = Callable[[dict, list[str]], dict]
_config_editor: Optional[ConfigEditor] = None


def set_config_editor(editor: ConfigEditor) -> None:
    """Install the function `Run.override_training` uses: (config, overrides) -> the changed, validated config.

    `asr_poc.config` installs its own when imported: validation stands above this floor and cannot be imported
    from here."""
    global _config_editor
    _config_editor = editor


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on `path` (created if missing) for the block: one writer across processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def new_run_id(model: str) -> str:
    """`20261125-063012-conformer-3fa2`: start time, model, and a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{secrets.token_hex(2)}"


def default_root(config: Optional[dict] = None) -> Path:
    """The folder runs live in: the config's `checkpoint_dir` (default `checkpoints`), resolved."""
    return resolve_path((config or {}).get("checkpoint_dir") or DEFAULT_ROOT)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` on this host exists and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


class Run:
    """One run folder. Cheap to create; every property reads the files again, so it is always current."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        self._config: Optional[dict] = None
        self._events_repaired = False
        self.bad_event_lines = 0  # lines of events.jsonl skipped by this object's reads because they are not events

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # --- creating and finding runs ------------------------------------------------------------------------------
    @classmethod
    def create(cls, config: dict, root: str | os.PathLike | None = None) -> "Run":
        """Make a new run folder under `root` (default: the config's checkpoint_dir) holding `config`."""
        root_path = resolve_path(root) if root else default_root(config)
        root_path.mkdir(parents=True, exist_ok=True)
        while True:
            path = root_path / new_run_id(config["model"])
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        run = cls(path)
        atomic_write_text(run.config_path, dump_yaml(config))
        run.events_path.touch()
        run.write_status(state="created", model=config["model"], dataset=config["dataset"], created=time.time())
        return run

    @classmethod
    def open(cls, path_or_id: str | os.PathLike, root: str | os.PathLike | None = None) -> "Run":
        """An existing run, by its folder, or by its id (or a unique prefix of it) under `root`."""
        path = Path(path_or_id)
        if (path / "config.yaml").is_file():
            return cls(path)
        root_path = resolve_path(root) if root else default_root()
        matches = [p for p in sorted(root_path.glob(f"{path_or_id}*")) if (p / "config.yaml").is_file()]
        exact = [p for p in matches if p.name == str(path_or_id)]
        if exact or len(matches) == 1:
            return cls((exact or matches)[0])
        if matches:
            raise FileNotFoundError(f"run {str(path_or_id)!r} is ambiguous in {root_path}: "
                                    f"{', '.join(p.name for p in matches)}")
        raise FileNotFoundError(f"no run {str(path_or_id)!r} (looked for a folder, and in {root_path})")

    # --- files ---------------------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.path.name

    @property
    def root(self) -> Path:
        return self.path.parent

    config_path = property(lambda self: self.path / "config.yaml")
    events_path = property(lambda self: self.path / "events.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    stop_path = property(lambda self: self.path / "STOP")
    log_path = property(lambda self: self.path / "log.txt")
    last_checkpoint = property(lambda self: self.path / "last.pt")
    best_checkpoint = property(lambda self: self.path / "best.pt")

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.path / f"epoch-{epoch}.pt"

    def checkpoints(self) -> list[Path]:
        """Every checkpoint file of the run, by name."""
        return sorted(self.path.glob("*.pt"))

    @property
    def config(self) -> dict:
        """The run's config (read once)."""
        if self._config is None:
            try:
                config = load_yaml_text(self.config_path.read_text(errors="replace"))
            except yaml.YAMLError as err:
                raise RunConfigError([f"{self.config_path}: not valid YAML ({str(err).splitlines()[0]})"]) from None
            if not isinstance(config, dict):
                raise RunConfigError([f"{self.config_path}: must hold a mapping at the top level"])
            self._config = config
        return self._config

    def override_training(self, overrides: list[str]) -> dict:
        """Change `training.*` keys (e.g. a new time budget before resuming); the model and data stay fixed.

        The change is made and checked by the editor `asr_poc.config` installs (`set_config_editor`); a refused
        change raises its error and leaves config.yaml as it was."""
        if _config_editor is None:
            raise RuntimeError("no config editor installed: import asr_poc.config before changing a run's config")
        return self.write_config(_config_editor(self.config, list(overrides)))

    def write_config(self, config: dict) -> dict:
        """Replace config.yaml with `config` (already validated by the caller), atomically."""
        atomic_write_text(self.config_path, dump_yaml(config))
        self._config = config
        return config

    # --- status --------------------------------------------------------------------------------------------------
    def _read_status(self) -> dict:
        try:
            status = json.loads(self.status_path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            return {}
        return status if isinstance(status, dict) else {}

    @property
    def status(self) -> dict:
        """status.json; a running/stopping run whose process is gone or silent for a minute is `interrupted`.

        An interrupted run's `step` is its last checkpoint's (`checkpoint_step`): where a resume goes on from."""
        status = self._read_status()
        if status.get("state") in ACTIVE_STATES and not self._alive(status):
            status["state"] = "interrupted"
            if isinstance(status.get("checkpoint_step"), int):
                status["step"] = status["checkpoint_step"]
        return status

    @staticmethod
    def _alive(status: dict) -> bool:
        try:
            if time.time() - float(status.get("updated") or 0) > HEARTBEAT_TIMEOUT:
                return False
            if status.get("pid") and status.get("hostname") == socket.gethostname():
                return pid_alive(int(status["pid"]))
        except (TypeError, ValueError, OverflowError):
            return False
        return True  # another host (e.g. another container): trust the fresh heartbeat

    @property
    def is_active(self) -> bool:
        """Running or stopping, with a live process."""
        return self.status.get("state") in ACTIVE_STATES

    def write_status(self, **fields: Any) -> dict:
        """Merge `fields` into status.json (atomically, under a file lock) and refresh the `updated` heartbeat."""
        with _status_lock, _file_lock(self.path / ".status.lock"):
            status = {**self._read_status(), **fields, "updated": time.time()}
            atomic_write_json(self.status_path, status, indent=2)
        return status

    # --- events --------------------------------------------------------------------------------------------------
    def append_event(self, event: dict) -> None:
        """Append one event (a dict with `type`) as a JSON line; `time` is added when missing."""
        if not self._events_repaired:  # a killed writer may have left half a line
            drop_partial_line(self.events_path)
            self._events_repaired = True
        append_json_line(self.events_path, {"time": round(time.time(), 3), **event})

    def read_events(self, offset: int = 0) -> tuple[list[dict], int]:
        """Events after byte `offset`, and the offset to pass next time. A partial last line is left for later.

        Lines that are not events are skipped and counted (`bad_event_lines`); when a read skips some, a warning
        log event saying so is added at the end (it is not written to the file)."""
        events, new_offset, bad = read_event_lines(self.events_path, offset)
        if bad:
            self.bad_event_lines += bad
            events.append({"type": "log", "level": "warning", "time": time.time(),
                           "message": f"skipped {bad} unreadable line{'s' if bad > 1 else ''} of {self.events_path}"})
        return events, new_offset

    def events(self, type: Optional[str] = None) -> list[dict]:
        """All events so far (of one `type` if given)."""
        events = self.read_events(0)[0]
        return [e for e in events if e.get("type") == type] if type else events

    # --- stop requests -------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the training loop to stop after its current step (it writes last.pt first)."""
        atomic_write_text(self.stop_path, f"{time.time()} {socket.gethostname()} {os.getpid()}\n")

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def clear_stop(self) -> None:
        self.stop_path.unlink(missing_ok=True)


def scores_at_best(evals: Iterable[dict], extras: Iterable[dict]) -> dict[str, dict]:
    """{set: its `extra_eval` event at the step of the best dev CER (the weights best.pt holds), else its latest}.

    `evals` are dev `eval` events, `extras` are `extra_eval` events, both in the order they were written."""
    finite = [e for e in evals if isinstance(e.get("cer"), (int, float)) and e["cer"] == e["cer"]]
    best_step = min(finite, key=lambda e: e["cer"])["step"] if finite else None
    chosen: dict[str, dict] = {}
    for e in extras:
        name = e.get("dataset")
        if name is None:
            continue
        if name not in chosen or chosen[name].get("step") != best_step or e.get("step") == best_step:
            chosen[name] = e
    return chosen


def list_runs(root: str | os.PathLike | None = None) -> list[Run]:
    """Every run under `root` (default: `checkpoints`), newest first."""
    root_path = resolve_path(root) if root else default_root()
    if not root_path.is_dir():
        return []
    folders = [p for p in root_path.iterdir() if (p / "config.yaml").is_file()]
    folders.sort(key=lambda p: (p / "config.yaml").stat().st_mtime_ns, reverse=True)
    return [Run(p) for p in folders]
