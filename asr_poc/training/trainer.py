"""The training loop: one function to read top to bottom, in the spirit of nanoGPT's train.py.

`train(run)` trains the model and data set named in `run.config` and records everything in the run folder
(events, a status heartbeat, checkpoints); it does not know who watches. It ends

- `finished` after the last epoch, at `training.max_steps`, or after `training.max_minutes` (counted from this
  call, so a resumed run gets a fresh budget);
- `stopped` when a stop is requested (`stop_event` set, or the run's STOP file), after writing last.pt;
- `failed` on any error, with the one-line reason in status.json; checkpoints already written are kept.

`train` is set-up (`setup.py`), then epochs of `train_step`, then `evaluate_and_save` and `save`; all of them
change one `TrainState` (`state.py`: step, epoch, batch in the epoch, best scores). A checkpoint is a plain dict:
`model.checkpoint_state()` (self-contained: weights, config, vocabulary, features) plus optimizer, scheduler,
scaler, RNG states and the saved fields of `TrainState`. `resume=True` continues from last.pt at exactly that
point: same weights, optimizer moments, learning rate and position in the epoch's batch order.

Several processes: `torchrun --nproc_per_node=N -m asr_poc train ...` (or `... -m asr_poc.training.worker RUN_DIR`);
only rank 0 writes, and every rank decides together with the others (`distributed.py`).
"""
from __future__ import annotations

import math
import os
import socket
import threading
import time
import traceback
from typing import Optional

import torch

from ..checkpoint_io import CheckpointRefused
from ..config import validate_config
from ..evaluation import evaluate
from ..io import DiskFullError, atomic_torch_save
from ..models.interface import BaseASRModel
from ..models.spec import model_spec
from ..paths import resolve_path
from ..plugins import get_model_class
from ..runs import Run
from ..text import train_tokenizer
from .distributed import Ranks, join_group, leave_group, max_over_ranks, training_device
from .extra_eval import score_extra_sets
from .recorder import Heartbeat, Recorder
from .setup import Setup, TrainingError, assemble, load_data, remove_leftovers, resume_checkpoint
from .state import TrainState, rng_state, seed_everything

MAX_BAD_STEPS = 10  # non-finite losses in a row before the run fails


def train(run: Run, resume: bool = False, stop_event: Optional[threading.Event] = None,
          progress: bool = False) -> dict:
    """Train `run` (from scratch, or from its last.pt with `resume`) and return its final status."""
    ranks = Ranks.from_env()  # torchrun's; one process is rank 0 of 1
    record = Recorder(run, enabled=ranks.master)
    state = TrainState()
    heartbeat = Heartbeat(record, state.progress)
    ended_normally = False  # every rank reached the end together (should_end agrees over the ranks)
    try:
        # ---- set-up ---------------------------------------------------------------------------------------------
        record.status(state="running", pid=os.getpid(), hostname=socket.gethostname(), started=time.time(), error=None)
        cfg = validate_config(run.config, check_data=False)
        tc = cfg["training"]
        join_group(ranks)
        device = training_device(tc["device"], ranks)
        record.status(model=cfg["model"], dataset=cfg["dataset"])
        record.event({"type": "status", "state": "running"})
        if ranks.master:
            heartbeat.start()
        seed_everything(tc["seed"])
        if tc["num_threads"]:
            torch.set_num_threads(tc["num_threads"])
        train_set, dev_set = load_data(cfg)
        remove_leftovers(run, record)
        checkpoint, resumed_from = resume_checkpoint(run, record, device) if resume else (None, None)
        raw_model = build_model(cfg, train_set, checkpoint, record, device)  # on resume: the checkpoint's
        s = assemble(run, cfg, ranks, device, record, stop_event, raw_model, train_set, dev_set,
                     checkpoint, resumed_from, state)
        del checkpoint
        state.evaluated_at = state.step if resume and run.last_checkpoint.is_file() else -1
        state.tick = state.saved = time.perf_counter()

        # ---- the loop -------------------------------------------------------------------------------------------
        end = should_end(s, state)
        while end is None and state.epoch < tc["epochs"]:
            loader = s.loader(state)  # first: a data set may change its items (and batches) per epoch
            bar = progress_bar(s, state) if progress and ranks.master else None
            for batch in loader:
                loss = train_step(s, state, batch)
                if loss is not None and checkpoint_due(s, state):
                    save(s, state, "last")  # a crash loses minutes, not an epoch
                    state.saved = state.tick = time.perf_counter()
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.3f}" if loss is not None else "skipped", step=state.step,
                                    refresh=False)
                    bar.update()
                end = should_end(s, state)
                if end:
                    break
            if bar is not None:
                bar.close()
            if end is None:  # a whole epoch is done
                state.epoch, state.batch_in_epoch, state.in_epoch = state.epoch + 1, 0, False
                evaluate_and_save(s, state, end_of_epoch=True)
                end = should_end(s, state)
                state.tick = time.perf_counter()

        # ---- the end --------------------------------------------------------------------------------------------
        if end == "stopped":
            record.status(state="stopping")
            record.event({"type": "status", "state": "stopping"})
            save(s, state, "last")
            run.clear_stop()
        elif state.evaluated_at != state.step:  # a step or time limit ended the run inside an epoch
            evaluate_and_save(s, state, end_of_epoch=False)
        status = finish(run, record, heartbeat, state, end or "finished")
        ended_normally = True
        return status

    except BaseException as err:
        status = record_failure(run, record, heartbeat, state, err)
        if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit: recorded, then passed on
            raise
        return status
    finally:
        heartbeat.stop()
        if ranks.distributed:
            leave_group(wait_for_all=ended_normally)


def build_model(cfg: dict, train_set, checkpoint: Optional[dict], record: Recorder,
                device: torch.device) -> BaseASRModel:
    """The model to train, on `device`: the checkpoint's own (resume), one started from training.init_checkpoint
    (its weights and vocabulary), or a new one whose vocabulary is the train split's characters (or its BPE
    pieces: training.subword_vocab_size)."""
    tc, initial = cfg["training"], None
    if checkpoint is not None:
        model_config = checkpoint["config"]
    elif tc["init_checkpoint"]:  # a new run from another run's weights, with their vocabulary
        initial = _initial_model(tc["init_checkpoint"], cfg["model"])
        model_config = {**initial.config, "spec_augment": tc["spec_augment"]}
    else:
        tokenizer = train_tokenizer(train_set.texts(), tc["subword_vocab_size"])  # characters, or BPE pieces
        model_config = model_spec(cfg, tokenizer.vocab, tc["spec_augment"])
    model = get_model_class(cfg["model"])(model_config).to(device)
    if initial is not None:
        model.load_state_dict(initial.state_dict())
        record.log(f"initialised from {tc['init_checkpoint']}")
    return model


def train_step(s: Setup, state: TrainState, batch: dict) -> Optional[float]:
    """Forward, backward, clip and one optimizer step on `batch`, then a `step` event.

    Returns the loss, or None when the batch was skipped (a non-finite loss or gradient on any rank).

    The batch carries `step`, the run's global optimizer step it makes (from 0; restored from the checkpoint on
    resume): a model whose training changes with the step (rnn-t's CTC warm-up) reads it there and keeps no count.
    The host waits for the device once a step, for the loss, the gradient norm and the batch's length together."""
    batch = {k: v.to(s.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    batch["step"] = state.step
    if s.batch_augmenter is not None:  # training.augment_in: batches (on the training device)
        batch["waveforms"], batch["waveform_lengths"] = s.batch_augmenter(batch["waveforms"], batch["waveform_lengths"])
    with s.autocast():
        loss = s.model(batch)
    s.scaler.scale(loss).backward()
    s.scaler.unscale_(s.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.training["grad_clip"])
    loss_value, grad_norm, samples = torch.stack(  # the step's one host sync
        [loss.detach().float(), grad_norm.float(), batch["waveform_lengths"].sum().float()]).tolist()
    state.batch_in_epoch += 1
    if max_over_ranks(int(not math.isfinite(loss_value)), s.device, s.ranks):
        return skip_batch(s, state, f"loss is {loss_value}", f"loss is {'NaN' if math.isnan(loss_value) else loss_value}")
    if not s.scaler.is_enabled() and not math.isfinite(grad_norm):  # fp16's scaler skips such steps itself
        return skip_batch(s, state, f"gradient norm is {grad_norm}", "gradients are not finite")
    state.bad_steps = 0
    lr = s.optimizer.param_groups[0]["lr"]
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    now = time.perf_counter()
    audio_seconds = samples / s.raw_model.sample_rate * s.ranks.world_size
    s.record.event({"type": "step", "step": state.step, "epoch": state.epoch + 1, "loss": loss_value, "lr": lr,
                    "audio_seconds_per_second": audio_seconds / max(now - state.tick, 1e-9), "grad_norm": grad_norm})
    state.tick, state.in_epoch = now, True
    return loss_value


def skip_batch(s: Setup, state: TrainState, warning: str, error: str) -> None:
    """Drop this batch's gradients with a warning; after MAX_BAD_STEPS in a row the run fails."""
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.update()  # closes the unscale_ of this step (fp16: the inf it found lowers the scale); off: nothing
    state.bad_steps += 1
    s.record.log(f"{warning} at step {state.step + 1}; batch skipped", "warning")
    if state.bad_steps >= MAX_BAD_STEPS:
        raise TrainingError(f"{error} at step {state.step + 1}; lower training.learning_rate")


def checkpoint_due(s: Setup, state: TrainState) -> bool:
    """Whether `training.checkpoint_minutes` have passed since the last timed last.pt."""
    minutes = s.training["checkpoint_minutes"]
    return bool(minutes) and time.perf_counter() - state.saved >= 60 * minutes


def evaluate_and_save(s: Setup, state: TrainState, end_of_epoch: bool) -> None:
    """Dev WER/CER, then last.pt, epoch-N.pt (every checkpoint_every epochs), and best.pt if CER improved."""
    state.evaluated_at = state.step
    if not s.ranks.master:
        return
    improved = False
    if s.dev_set is not None and len(s.dev_set) > 0:
        metrics = evaluate(s.raw_model, s.dev_set, limit=s.training["eval_utterances"])
        s.record.event({"type": "eval", "step": state.step, "epoch": state.epoch,
                        **{k: metrics[k] for k in ("wer", "cer", "rtf")}})
        improved = state.best_cer is None or metrics["cer"] < state.best_cer
        if improved:
            state.best_cer, state.best_wer = metrics["cer"], metrics["wer"]
            s.record.status(best_cer=state.best_cer, best_wer=state.best_wer)
    score_extra_sets(s.raw_model, s.extra_sets, state.step, state.epoch, s.record.event)  # events only
    save(s, state, "last")  # first: last.pt is never older than another checkpoint, whenever a kill comes
    if end_of_epoch and state.epoch % s.training["checkpoint_every"] == 0:
        save(s, state, "epoch")
    if improved:
        save(s, state, "best")


def save(s: Setup, state: TrainState, kind: str) -> None:
    """Write checkpoint `kind` (last, best, epoch) of the current state (rank 0 only) and announce it."""
    if not s.ranks.master:
        return
    run = s.run
    path = {"last": run.last_checkpoint, "best": run.best_checkpoint}.get(kind) or run.epoch_checkpoint(state.epoch)
    atomic_torch_save(s.raw_model.checkpoint_state(
        optimizer=s.optimizer.state_dict(), scheduler=s.scheduler.state_dict(), scaler=s.scaler.state_dict(),
        rng=rng_state(), run_id=run.id, **state.saved_fields()), path)
    s.record.status(step=state.step, checkpoint_step=state.step, checkpoint_epoch=state.epoch)  # where a resume goes on
    s.record.event({"type": "checkpoint", "path": str(path), "step": state.step, "epoch": state.epoch, "kind": kind})


def should_end(s: Setup, state: TrainState) -> Optional[str]:
    """'stopped' on a stop request, 'finished' at a step or time limit, else None (all ranks agree)."""
    tc, code = s.training, 0
    if tc["max_steps"] and state.step >= tc["max_steps"]:
        code = 1
    if tc["max_minutes"] and time.monotonic() - state.started >= 60 * tc["max_minutes"]:
        code = 1
    if (s.stop_event is not None and s.stop_event.is_set()) or s.run.stop_requested():
        code = 2
    return (None, "finished", "stopped")[max_over_ranks(code, s.device, s.ranks)]


def progress_bar(s: Setup, state: TrainState):
    """A tqdm bar over this epoch's batches (foreground runs)."""
    from tqdm.auto import tqdm  # optional: only a foreground run in a terminal or notebook draws one

    return tqdm(total=len(s.sampler), initial=state.batch_in_epoch,
                desc=f"epoch {state.epoch + 1}/{s.training['epochs']}")


def finish(run: Run, record: Recorder, heartbeat: Heartbeat, state: TrainState, end: str,
           error: Optional[str] = None) -> dict:
    """Record how the run ended (status.json and a `status` event) and return its status as this rank sees it."""
    heartbeat.stop()
    record.status(state=end, error=error, **state.progress())
    record.event({"type": "status", "state": end, **({"error": error} if error else {})})
    return {**run.status, "state": end, "error": error}


def record_failure(run: Run, record: Recorder, heartbeat: Heartbeat, state: TrainState, err: BaseException) -> dict:
    """Record `err` as the run's end ('failed' with its one-line reason, the traceback as a log event)."""
    if not isinstance(err, (TrainingError, DiskFullError, CheckpointRefused)):  # those say it all in one line
        traceback.print_exc()
    try:
        status = finish(run, record, heartbeat, state, "failed", _one_line(err))  # first: on a full disk the
        record.log(traceback.format_exc(), "error")                              # status matters more
    except OSError as write_err:  # e.g. the disk is still full
        print(f"could not record the failure of {run.id}: {write_err}", flush=True)
        status = run.status
    return status


def _initial_model(path: str, model_name: str) -> BaseASRModel:
    """The model saved at `path` (training.init_checkpoint), which must be of the class the run trains."""
    try:
        model = BaseASRModel.from_checkpoint(resolve_path(path))
    except (OSError, ValueError) as err:
        raise TrainingError(f"training.init_checkpoint = {path!r}: {err}") from None
    if type(model) is not get_model_class(model_name):
        raise TrainingError(f"training.init_checkpoint = {path!r} holds a {model.name!r} model; "
                            f"set model: {model.name} to start from it")
    return model


def _one_line(err: BaseException) -> str:
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if isinstance(err, (TrainingError, DiskFullError, CheckpointRefused)):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
