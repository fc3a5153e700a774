"""Safe to share (issue 8): checkpoints that cannot run code, crashes and full disks that lose minutes, not work,
event lines that cannot break a reader, and the small guards around a run (stop timeout, gradients, permissions).

Runs and locks racing each other are in test_run_lock.py; config errors in test_config.py.
"""
from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_poc.checkpoint_io import CheckpointRefused, load_checkpoint_file
from asr_poc.cli import main as cli
from asr_poc.config import load_config
from asr_poc.models.conformer import ConformerCTC
from asr_poc.models.interface import BaseASRModel
from asr_poc.plugins import register_model
from asr_poc import io as checkpoint_module
from asr_poc.io import DiskFullError, atomic_torch_save, atomic_write_text
from asr_poc.training.checkpoint import rng_from_plain, rng_to_plain
from asr_poc.training.launcher import start_run
from asr_poc.runs import Run, read_event_lines
from asr_poc.training.trainer import train
from conftest import TINY_MODEL, copy_run, tiny_config, wait_for

REFUSED = "refused: not a plain-data checkpoint"


class Payload:
    """What an attacker puts into a checkpoint: unpickling it runs a shell command (here: touch a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def tiny_model() -> BaseASRModel:
    """An untrained tiny conformer (no corpus needed)."""
    from asr_poc.models.features import FeatureSpec
    from asr_poc.text import CharTokenizer

    cfg = load_config(None, TINY_MODEL, check_data=False)
    return ConformerCTC({**cfg["models"]["conformer"], "vocab": CharTokenizer.from_texts(["hello world"]).vocab,
                         "features": FeatureSpec().to_dict()})


def crafted_checkpoint(path: Path, marker: Path, **extra) -> Path:
    """A real checkpoint with the payload hidden inside (and any training keys in `extra`)."""
    torch.save({**tiny_model().checkpoint_state(**extra), "notes": Payload(marker)}, path)
    return path


def one_line_refusal(text: str, path: Path) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert str(path) in lines[0] and REFUSED in lines[0] and "posix.system" in lines[0], lines[0]


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    return crafted_checkpoint(tmp_path / "best.pt", marker), marker


# --- checkpoints cannot run code ------------------------------------------------------------------------------------

def test_the_crafted_checkpoint_would_run_code_if_unpickled(tmp_path):
    """The payload is real: a plain pickle load runs it. Every test below shows that no path of ours does."""
    control = tmp_path / "control-marker"
    crafted_checkpoint(tmp_path / "control.pt", control)
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()


def test_model_loaders_refuse_a_crafted_checkpoint_in_one_line(crafted):
    path, marker = crafted
    for load in (lambda: BaseASRModel.from_checkpoint(path), lambda: tiny_model().load_checkpoint(path),
                 lambda: load_checkpoint_file(path)):
        with pytest.raises(CheckpointRefused) as err:
            load()
        one_line_refusal(str(err.value), path)
    assert not marker.exists()


def test_transcriber_and_bench_refuse_a_crafted_checkpoint(crafted):
    from asr_poc.bench.systems import load_system
    from asr_poc.inference import Transcriber

    path, marker = crafted
    for load in (lambda: Transcriber.from_checkpoint(path), lambda: load_system(str(path))):
        with pytest.raises(CheckpointRefused) as err:
            load()
        one_line_refusal(str(err.value), path)
    assert not marker.exists()


def test_cli_transcribe_and_eval_refuse_a_crafted_checkpoint(crafted, tmp_path, capsys):
    path, marker = crafted
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32), 16000)
    for argv in (["transcribe", str(path), str(wav)], ["eval", str(path), "--limit", "1"]):
        capsys.readouterr()
        assert cli(argv) == 1
        out = capsys.readouterr()
        assert out.out == ""
        one_line_refusal(out.err, path)
    assert not marker.exists()


def test_a_model_name_that_is_not_a_plain_name_never_reaches_the_plugins(tmp_path, monkeypatch):
    import asr_poc.plugins as plugins

    state = tiny_model().checkpoint_state()
    monkeypatch.setattr(plugins, "get_model_class", lambda name: pytest.fail(f"plugin lookup of {name!r}"))
    for name in ("../../tmp/evil", "os.path", "x" * 65, "", 7, None):
        path = tmp_path / "named.pt"
        torch.save({**state, "model_name": name}, path)
        with pytest.raises(CheckpointRefused, match="is not a plain name"):
            BaseASRModel.from_checkpoint(path)


def test_a_truncated_or_foreign_file_is_one_clear_line(tmp_path):
    good = tmp_path / "good.pt"
    tiny_model().save_checkpoint(good)
    (tmp_path / "half.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    torch.save([1, 2, 3], tmp_path / "list.pt")
    for name, message in (("half.pt", "not a readable checkpoint"), ("list.pt", "holds a list")):
        with pytest.raises(CheckpointRefused, match=message) as err:
            BaseASRModel.from_checkpoint(tmp_path / name)
        assert "\n" not in str(err.value)
    assert BaseASRModel.from_checkpoint(good).num_parameters() > 0


def test_rng_states_are_plain_data_and_come_back_exactly():
    random.seed(3)
    np.random.seed(4)
    np.random.standard_normal()  # numpy then holds a cached gaussian, part of its state
    plain = rng_to_plain(np.random.get_state(), random.getstate())
    path_bytes = __import__("io").BytesIO()
    torch.save(plain, path_bytes)
    path_bytes.seek(0)
    loaded = torch.load(path_bytes, weights_only=True)  # no allow-list needed: tensors, lists, numbers
    expected = (np.random.random(5).tolist(), [random.random() for _ in range(5)])
    numpy_state, python_state = rng_from_plain(loaded["numpy"], loaded["python"])
    np.random.set_state(numpy_state)
    random.setstate(python_state)
    assert (np.random.random(5).tolist(), [random.random() for _ in range(5)]) == expected


def test_a_checkpoint_from_before_the_change_still_loads(tmp_path):
    """Older checkpoints hold numpy's RNG state as an array: still read (numpy arrays only), nothing else allowed."""
    path = tmp_path / "old.pt"
    tiny_model().save_checkpoint(path, rng={"numpy": np.random.get_state(), "python": random.getstate()})
    state = load_checkpoint_file(path)
    assert isinstance(state["rng"]["numpy"][1], np.ndarray)
    rng_from_plain(state["rng"]["numpy"], state["rng"]["python"])
    assert BaseASRModel.from_checkpoint(path).num_parameters() > 0


# --- training runs: shared by the tests below ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_epoch_run(small_corpus: Path, tmp_path_factory) -> Run:
    """A tiny run trained for one epoch: epoch-1.pt, last.pt; copy it before changing it."""
    run = Run.create(tiny_config(small_corpus, tmp_path_factory.mktemp("one-epoch"), "training.epochs=1"))
    assert train(run)["state"] == "finished"
    return run


def test_checkpoints_written_by_training_are_plain_data(one_epoch_run):
    for path in one_epoch_run.checkpoints():
        state = torch.load(path, map_location="cpu", weights_only=True)  # plain torch, no allow-list
        assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor) and isinstance(state["rng"]["python"], list)


def test_resume_refuses_a_crafted_last_pt_through_the_cli(one_epoch_run, tmp_path, capsys):
    run = copy_run(one_epoch_run, tmp_path / "runs")
    for path in run.checkpoints():
        path.unlink()
    marker = tmp_path / "payload-ran"
    crafted_checkpoint(run.last_checkpoint, marker, optimizer={}, scheduler={}, step=1, epoch=0, batch_in_epoch=1)
    assert cli(["train", "--resume", str(run.path), "--set", "training.epochs=2"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and REFUSED in err and "posix.system" in err
    assert run.status["state"] == "failed" and REFUSED in run.status["error"]
    assert not marker.exists()


def test_resume_falls_back_to_the_newest_readable_checkpoint(one_epoch_run, tmp_path):
    run = copy_run(one_epoch_run, tmp_path / "runs")
    saved = load_checkpoint_file(run.epoch_checkpoint(1))["step"]
    data = run.last_checkpoint.read_bytes()
    run.last_checkpoint.write_bytes(data[: len(data) // 3])  # a torn last.pt
    (run.path / ".last.pt.k1ll3d.tmp").write_bytes(b"half a save")
    run.override_training([f"training.max_steps={saved + 2}", "training.epochs=5"])

    assert train(run, resume=True)["state"] == "finished"
    messages = [e["message"] for e in run.events("log")]
    assert any("last.pt: not a readable checkpoint" in m and "trying an older checkpoint" in m for m in messages)
    assert any(f"resumed from epoch-1.pt at step {saved}" in m for m in messages)
    assert any("removed .last.pt.k1ll3d.tmp" in m for m in messages)
    assert not list(run.path.glob(".*.tmp"))
    assert [e["step"] for e in run.events("step")][-2:] == [saved + 1, saved + 2]
    assert run.status["step"] == load_checkpoint_file(run.last_checkpoint)["step"] == saved + 2


def test_resume_with_no_readable_checkpoint_fails_in_one_line(one_epoch_run, tmp_path):
    run = copy_run(one_epoch_run, tmp_path / "runs")
    for path in run.checkpoints():
        path.write_bytes(b"not a checkpoint")
    status = train(run, resume=True)
    assert status["state"] == "failed" and "\n" not in status["error"]
    assert status["error"].startswith("no readable checkpoint to resume from:") and "epoch-1.pt" in status["error"]


def test_last_pt_is_written_every_few_minutes_within_an_epoch(small_corpus, tmp_path):
    run = Run.create(tiny_config(small_corpus, tmp_path, "training.epochs=1", "training.checkpoint_minutes=0.00001"))
    assert train(run)["state"] == "finished"
    steps = len(run.events("step"))
    saved_at = [e["step"] for e in run.events("checkpoint") if e["kind"] == "last"]
    assert saved_at[:3] == [1, 2, 3] and saved_at[-1] == steps  # every step here (0.6 ms), then at the epoch's end
    assert run.status["checkpoint_step"] == steps


def test_runs_shows_the_checkpoint_step_after_a_kill(small_corpus, tmp_path, capsys):
    run = Run.create(tiny_config(small_corpus, tmp_path, "training.epochs=1000", "training.checkpoint_minutes=0.03"))
    handle = start_run(run, background="process")
    try:
        wait_for(lambda: len(run.events("checkpoint")) >= 2, 120, "two checkpoints")
    finally:
        os.kill(handle.process.pid, signal.SIGKILL)
    wait_for(lambda: run.status["state"] == "interrupted", 10, "the run to count as interrupted")
    capsys.readouterr()
    assert cli(["runs", "--root", str(tmp_path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["state"] == "interrupted"
    assert row["step"] == load_checkpoint_file(run.last_checkpoint)["step"] > 0


# --- disk full ----------------------------------------------------------------------------------------------------

def test_a_full_disk_is_one_line_with_the_file_and_the_bytes(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"w": torch.zeros(1000)}, path)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class FillingFile:
        """The temporary file on a disk that fills after 100 kB."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            if self.written + len(data) > 100_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FillingFile(real_fdopen(fd, mode)))
    with pytest.raises(DiskFullError) as err:
        atomic_torch_save({"w": torch.zeros(250_000)}, path)  # torch turns the OSError into a RuntimeError
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "needs about 1.1 MB" in message and " free" in message
    assert path.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def _mount_tmpfs(folder: Path, size: int) -> bool:
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True)
    return result.returncode == 0


def test_a_really_full_disk_fails_the_run_and_keeps_the_checkpoint(small_corpus, tmp_path):
    """A tmpfs that holds one checkpoint and a half: the second last.pt does not fit (root only; skipped else)."""
    probe = tiny_config(small_corpus, tmp_path / "probe", "training.max_steps=1")
    probe_run = Run.create(probe)
    assert train(probe_run)["state"] == "finished"
    size = probe_run.last_checkpoint.stat().st_size
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, int(size * 1.5) + 64 * 1024):
        pytest.skip("needs root and tmpfs to mount a small disk")
    try:
        run = Run.create(tiny_config(small_corpus, disk, "training.epochs=3", "training.checkpoint_every=100"))
        status = train(run)
        assert status["state"] == "failed", status
        assert run.status["state"] == "failed" and run.status["error"] == status["error"]
        assert status["error"].startswith(f"disk full while writing {run.last_checkpoint}: needs about")
        assert " free; the previous file is kept" in status["error"]
        state = load_checkpoint_file(run.last_checkpoint)
        assert state["epoch"] == 1 and BaseASRModel.from_checkpoint(run.last_checkpoint)
        assert not list(run.path.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# --- atomic files: folder fsync and permissions ------------------------------------------------------------------

def test_a_rename_is_followed_by_an_fsync_of_the_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def record(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    atomic_write_text(tmp_path / "a.txt", "x")
    assert synced == [False, True]  # the file, then its folder after the rename


def test_all_files_of_a_run_folder_have_the_same_mode(one_epoch_run):
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in one_epoch_run.path.iterdir() if p.is_file()}
    expected = 0o666 & ~checkpoint_module._umask()
    assert set(modes.values()) == {expected}, modes


# --- event lines that are not events --------------------------------------------------------------------------------

BAD_LINES = [b"\xff\xfe not utf-8", b"[1, 2, 3]", b"42", b'"a string"', b"null", b'{"no": "type"}',
             b'{"type": "step", "step": "seven"}', b'{"type": "step", "step": Infinity}', b'{"type": 5}',
             b'{"type": "eval", "cer": true}', b'{"type": "log", "message": {"nested": 1}}', b"{truncated"]


def write_bad_events(run: Run) -> None:
    good = [json.dumps({"type": "step", "step": i, "loss": 1.0 / i, "time": 1.0 + i}).encode() for i in (1, 2)]
    run.events_path.write_bytes(b"\n".join([good[0], *BAD_LINES, b"", good[1]]) + b"\n" + b'{"type": "st')


def test_every_event_reader_skips_and_counts_bad_lines(tmp_path, small_corpus):
    from asr_poc.ui.history import RunHistory
    from asr_poc.ui.run_browser import run_summary
    from asr_poc.ui.watcher import RunWatcher

    run = Run.create(tiny_config(small_corpus, tmp_path))
    write_bad_events(run)
    events, offset, bad = read_event_lines(run.events_path)
    assert [e["step"] for e in events] == [1, 2] and bad == len(BAD_LINES)
    assert offset == run.events_path.stat().st_size - len(b'{"type": "st')  # the partial line waits

    seen = []
    watcher = RunWatcher(Run(run.path), seen.extend, on_status=lambda s: None)
    assert watcher.poll() == 3 and watcher.run.bad_event_lines == len(BAD_LINES)
    assert seen[-1]["level"] == "warning" and f"skipped {len(BAD_LINES)} unreadable lines" in seen[-1]["message"]
    history = RunHistory()
    history.extend(seen)
    assert history.steps == [1, 2] and run_summary(run, history)["steps"] == 2
    assert [e["step"] for e in run.events("step")] == [1, 2]


def test_cli_runs_survives_a_broken_status_file(tmp_path, small_corpus, capsys):
    broken = [Run.create(tiny_config(small_corpus, tmp_path)) for _ in range(3)]
    broken[0].status_path.write_bytes(b"\xff\xfe")
    broken[1].status_path.write_text("[1, 2]")
    broken[2].status_path.write_text('{"state": "running", "updated": "soon", "pid": "x"}')
    write_bad_events(broken[0])
    assert cli(["runs", "--root", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert cli(["runs", "--root", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and sorted(str(r["state"]) for r in rows) == ["None", "None", "interrupted"]


# --- guards: gradients, stop -------------------------------------------------------------------------------------

class _NaNGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


@register_model("nan-grad-conformer")
class NaNGradConformer(ConformerCTC):
    """A model whose loss is finite but whose gradients are NaN."""

    def forward(self, batch: dict) -> torch.Tensor:
        weight = next(self.parameters())
        return super().forward(batch) + 0.0 * _NaNGradient.apply(weight).sum()  # the value is the loss's


def test_non_finite_gradients_skip_the_step_like_a_non_finite_loss(small_corpus, tmp_path):
    cfg = tiny_config(small_corpus, tmp_path)
    cfg = load_config(None, [f"datasets.synthetic.path={small_corpus}", f"checkpoint_dir={tmp_path}",
                             "available_models=[conformer, nan-grad-conformer]", "model=nan-grad-conformer",
                             f"models.nan-grad-conformer={json.dumps(cfg['models']['conformer'])}",
                             "training.eval_utterances=0", "training.batch_size=2"])
    run = Run.create(cfg)
    status = train(run)
    assert status["state"] == "failed"
    assert status["error"] == "gradients are not finite at step 1; lower training.learning_rate"
    warnings = [e["message"] for e in run.events("log") if e["level"] == "warning"]
    assert len(warnings) == 10 and all("gradient norm is nan" in m for m in warnings)
    assert not run.events("step") and not run.checkpoints()


def test_stop_exits_non_zero_when_the_run_has_not_stopped_in_time(tmp_path, small_corpus, capsys):
    run = Run.create(tiny_config(small_corpus, tmp_path))
    run.write_status(state="running", pid=os.getpid(), hostname=os.uname().nodename)  # alive, never stops
    started = time.monotonic()
    assert cli(["stop", run.id, "--root", str(tmp_path), "--timeout", "0.5"]) == 1
    assert time.monotonic() - started < 5 and run.stop_requested()
    assert "still running after 0.5 s" in capsys.readouterr().err
    run.write_status(state="stopped")
    assert cli(["stop", run.id, "--root", str(tmp_path), "--timeout", "0.5"]) == 0

