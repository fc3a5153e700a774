"""The training loop: one function to read top to bottom, in the spirit of nanoGPT's train.py.

`train(run)` trains the model and data set named in `run.config` and records everything in the run folder
(events, a status heartbeat, checkpoints); it does not know who watches. It ends

- `finished` after the last epoch, at `training.max_steps`, or after `training.max_minutes` (counted from this
  call, so a resumed run gets a fresh budget);
- `stopped` when a stop is requested (`stop_event` set, or the run's STOP file), after writing last.pt;
- `failed` on any error, with the one-line reason in status.json; checkpoints already written are kept.

A checkpoint is `model.checkpoint_state()` (self-contained: weights, config, vocabulary, features) plus the
training state: optimizer, scheduler, scaler, `step` (optimizer steps done), `epoch` (epochs completed),
`batch_in_epoch` (batches done of the next epoch), best_cer, best_wer. `resume=True` continues from last.pt at
exactly that point: same weights, optimizer moments, learning rate and position in the epoch's batch order.

Several GPUs: `torchrun --nproc_per_node=N -m asr_poc.training.worker RUN_DIR`; only rank 0 writes.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import socket
import threading
import time
import traceback
from functools import partial
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..checkpoint_io import CheckpointRefused
from ..config import ConfigError, dataset_section, validate_config
from ..models.spec import model_config as build_model_config
from ..datasets.interface import DurationBucketSampler, collate_fn
from ..evaluation import evaluate
from ..plugins import get_dataset_class, get_model_class
from ..text import CharTokenizer
from ..io import DiskFullError, atomic_torch_save
from .checkpoint import load_resume_checkpoint, remove_stale_temporaries, rng_from_plain, rng_to_plain
from .extra_eval import load_extra_sets, score_extra_sets
from ..runs import Run

HEARTBEAT_SECONDS = 5.0
MAX_BAD_STEPS = 10  # non-finite losses in a row before the run fails


class TrainingError(RuntimeError):
    """Training cannot go on; the message says what to change."""


def train(run: Run, resume: bool = False, stop_event: Optional[threading.Event] = None,
          progress: bool = False) -> dict:
    """Train `run` (from scratch, or from its last.pt with `resume`) and return its final status."""
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's
    master = rank == 0
    emit: Callable[[dict], None] = run.append_event if master else (lambda event: None)
    set_status: Callable[..., object] = run.write_status if master else (lambda **fields: None)
    live = {"step": 0, "epoch": 0}  # what the heartbeat publishes
    heartbeat = _Heartbeat(set_status, live)
    started = time.monotonic()

    def finish(state: str, error: Optional[str] = None) -> dict:
        heartbeat.stop()
        set_status(state=state, error=error, **live)
        emit({"type": "status", "state": state, **({"error": error} if error else {})})
        return {**run.status, "state": state, "error": error}  # as this rank saw it (only rank 0 writes)

    try:
        set_status(state="running", pid=os.getpid(), hostname=socket.gethostname(), started=time.time(), error=None)
        cfg = validate_config(run.config, check_data=False)
        tc = cfg["training"]
        device = _setup_distributed(tc["device"], world_size)
        set_status(model=cfg["model"], dataset=cfg["dataset"])
        emit({"type": "status", "state": "running"})
        if master:
            heartbeat.start()

        # ---- reproducibility and threads ----------------------------------------------------------------------
        random.seed(tc["seed"])
        np.random.seed(tc["seed"])
        torch.manual_seed(tc["seed"])
        if tc["num_threads"]:
            torch.set_num_threads(tc["num_threads"])

        # ---- data ---------------------------------------------------------------------------------------------
        dataset_cls = get_dataset_class(cfg["dataset"])
        train_ds = dataset_cls(dataset_section(cfg), "train")
        dev_ds = dataset_cls(dataset_section(cfg), "dev") if tc["eval_utterances"] > 0 else None
        if len(train_ds) == 0:
            raise TrainingError(f"the train split of {cfg['dataset']!r} is empty")

        # ---- model and tokenizer (on resume: exactly those of the checkpoint) ---------------------------------
        checkpoint = resumed_from = None
        if master:
            for tmp in remove_stale_temporaries(run.path):
                emit({"type": "log", "level": "info", "message": f"removed {tmp.name}, left by a killed save"})
        if resume:  # the newest readable checkpoint: last.pt, else epoch-N.pt newest first, else best.pt
            checkpoint, resumed_from, skipped = load_resume_checkpoint(run.path, map_location=device)
            for line in skipped:
                emit({"type": "log", "level": "warning", "message": f"{line}; trying an older checkpoint"})
            if checkpoint is None:
                emit({"type": "log", "level": "warning", "message": "no last.pt to resume from; starting from step 0"})
        initial = None
        if checkpoint is not None:
            model_config = checkpoint["config"]
        elif tc["init_checkpoint"]:  # a new run from another run's weights, with their vocabulary
            initial = _initial_model(tc["init_checkpoint"], cfg["model"])
            model_config = {**initial.config, "spec_augment": tc["spec_augment"]}
        else:
            tokenizer = CharTokenizer.from_texts(train_ds.texts())
            model_config = build_model_config(cfg, tokenizer.vocab, tc["spec_augment"])
        raw_model = get_model_class(cfg["model"])(model_config).to(device)
        if initial is not None:
            raw_model.load_state_dict(initial.state_dict())
            emit({"type": "log", "level": "info", "message": f"initialised from {tc['init_checkpoint']}"})
            del initial
        tokenizer = raw_model.tokenizer

        # ---- optimizer, learning-rate schedule, batches, mixed precision --------------------------------------
        optimizer_cls = torch.optim.AdamW if tc["optimizer"] == "adamw" else torch.optim.Adam
        # a model may give parameter groups of its own (e.g. a pretrained model's head at another learning rate)
        groups = getattr(raw_model, "parameter_groups", None)
        params = groups(tc["learning_rate"]) if callable(groups) else raw_model.parameters()
        optimizer = optimizer_cls(params, lr=tc["learning_rate"], weight_decay=tc["weight_decay"])
        sampler = DurationBucketSampler(train_ds.durations(), tc["batch_size"], seed=tc["seed"],
                                        rank=rank, world_size=world_size)
        batches_per_epoch = len(sampler)
        total_steps = min(tc["max_steps"] or math.inf, tc["epochs"] * batches_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(lr_factor, warmup=tc["warmup_steps"], schedule=tc["lr_schedule"], total=total_steps))
        use_amp = device.type == "cuda" and tc["mixed_precision"]
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
        autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if use_amp else contextlib.nullcontext

        # ---- where we are ------------------------------------------------------------------------------------
        step, epoch, batch_in_epoch, best_cer, best_wer = 0, 0, 0, None, None
        if checkpoint is not None:
            raw_model.load_state_dict(checkpoint["state_dict"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            if checkpoint.get("scaler"):
                scaler.load_state_dict(checkpoint["scaler"])
            step, epoch, batch_in_epoch = checkpoint["step"], checkpoint["epoch"], checkpoint["batch_in_epoch"]
            best_cer, best_wer = checkpoint.get("best_cer"), checkpoint.get("best_wer")
            if checkpoint.get("rng"):
                _set_rng_state(checkpoint["rng"])
            emit({"type": "log", "level": "info", "message": f"resumed from {resumed_from.name} at step {step} "
                  f"(epoch {epoch + 1}, batch {batch_in_epoch} of {batches_per_epoch})"})
            del checkpoint
        raw_model.train()
        model = raw_model
        if world_size > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                raw_model, device_ids=[device.index] if device.type == "cuda" else None)

        num_parameters = raw_model.num_parameters()
        live.update(step=step, epoch=epoch + 1)
        set_status(num_parameters=num_parameters, best_cer=best_cer, best_wer=best_wer, **live)
        emit({"type": "log", "level": "info", "message":
              f"{cfg['model']}: {num_parameters:,} parameters; {cfg['dataset']}: {len(train_ds)} train and "
              f"{len(dev_ds) if dev_ds is not None else 0} dev utterances; {batches_per_epoch} batches an epoch "
              f"of {tc['batch_size']} on {device}" + (f" x {world_size}" if world_size > 1 else "")})

        extra_sets = load_extra_sets(cfg, raw_model.sample_rate, emit) if master else {}  # real speech beside dev

        def save(kind: str) -> None:
            """Write a checkpoint of the current state (rank 0 only) and announce it."""
            if not master:
                return
            path = {"last": run.last_checkpoint, "best": run.best_checkpoint}.get(kind) or run.epoch_checkpoint(epoch)
            atomic_torch_save(raw_model.checkpoint_state(
                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                step=step, epoch=epoch, batch_in_epoch=batch_in_epoch, best_cer=best_cer, best_wer=best_wer,
                rng=_rng_state(), run_id=run.id), path)
            set_status(step=step, checkpoint_step=step, checkpoint_epoch=epoch)  # the step a resume goes on from
            emit({"type": "checkpoint", "path": str(path), "step": step, "epoch": epoch, "kind": kind})

        def evaluate_and_save(end_of_epoch: bool) -> None:
            """Dev WER/CER, then last.pt, epoch-N.pt (every checkpoint_every epochs), and best.pt if CER improved."""
            nonlocal best_cer, best_wer
            if not master:
                return
            improved = False
            if dev_ds is not None and len(dev_ds) > 0:
                metrics = evaluate(raw_model, dev_ds, limit=tc["eval_utterances"])
                emit({"type": "eval", "step": step, "epoch": epoch,
                      **{k: metrics[k] for k in ("wer", "cer", "rtf")}})
                improved = best_cer is None or metrics["cer"] < best_cer
                if improved:
                    best_cer, best_wer = metrics["cer"], metrics["wer"]
                    set_status(best_cer=best_cer, best_wer=best_wer)
            score_extra_sets(raw_model, extra_sets, step, epoch, emit)  # training.extra_eval: events only
            save("last")  # first: last.pt is never older than another checkpoint, whenever a kill comes
            if end_of_epoch and epoch % tc["checkpoint_every"] == 0:
                save("epoch")
            if improved:
                save("best")

        def should_end() -> Optional[str]:
            """'stopped' on a stop request, 'finished' at a step or time limit, else None (all ranks agree)."""
            code = 0
            if tc["max_steps"] and step >= tc["max_steps"]:
                code = 1
            if tc["max_minutes"] and time.monotonic() - started >= 60 * tc["max_minutes"]:
                code = 1
            if (stop_event is not None and stop_event.is_set()) or run.stop_requested():
                code = 2
            return (None, "finished", "stopped")[_max_over_ranks(code, device, world_size)]

        # ---- the loop ----------------------------------------------------------------------------------------
        end = should_end()
        saved_at = step if run.last_checkpoint.is_file() and resume else -1
        bad_steps = 0
        tick = last_save = time.perf_counter()

        def skip_batch(warning: str, error: str) -> None:
            """Drop this batch's gradients with a warning; after MAX_BAD_STEPS in a row the run fails."""
            nonlocal bad_steps
            optimizer.zero_grad(set_to_none=True)
            bad_steps += 1
            emit({"type": "log", "level": "warning", "message": f"{warning} at step {step + 1}; batch skipped"})
            if bad_steps >= MAX_BAD_STEPS:
                raise TrainingError(f"{error} at step {step + 1}; lower training.learning_rate")

        while end is None and epoch < tc["epochs"]:
            sampler.set_epoch(epoch)
            loader = DataLoader(train_ds, batch_sampler=sampler.batches()[batch_in_epoch:],
                                collate_fn=partial(collate_fn, tokenizer=tokenizer), num_workers=tc["num_workers"],
                                # its own generator: creating a loader must not draw from the global RNG, which
                                # a resumed run restores exactly (SpecAugment, dropout)
                                generator=torch.Generator().manual_seed(tc["seed"] + epoch))
            bar = None
            if progress and master:
                from tqdm.auto import tqdm

                bar = tqdm(total=batches_per_epoch, initial=batch_in_epoch, desc=f"epoch {epoch + 1}/{tc['epochs']}")
            for batch in loader:
                with autocast():
                    loss = model(batch)
                scaler.scale(loss).backward()
                loss_value = float(loss.detach())
                batch_in_epoch += 1
                if _max_over_ranks(int(not math.isfinite(loss_value)), device, world_size):
                    skip_batch(f"loss is {loss_value}", f"loss is {'NaN' if math.isnan(loss_value) else loss_value}")
                else:
                    scaler.unscale_(optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
                    if not scaler.is_enabled() and not math.isfinite(float(grad_norm)):  # fp16's scaler skips itself
                        skip_batch(f"gradient norm is {float(grad_norm)}", "gradients are not finite")
                        end = should_end()
                        if end:
                            break
                        continue
                    bad_steps = 0
                    lr = optimizer.param_groups[0]["lr"]
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    now = time.perf_counter()
                    audio_seconds = float(batch["waveform_lengths"].sum()) / raw_model.sample_rate * world_size
                    emit({"type": "step", "step": step, "epoch": epoch + 1, "loss": loss_value, "lr": lr,
                          "audio_seconds_per_second": audio_seconds / max(now - tick, 1e-9),
                          "grad_norm": float(grad_norm)})
                    tick = now
                    live.update(step=step, epoch=epoch + 1)
                    if tc["checkpoint_minutes"] and now - last_save >= 60 * tc["checkpoint_minutes"]:
                        save("last")  # a crash loses minutes, not an epoch
                        last_save = tick = time.perf_counter()
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_value:.3f}", step=step, refresh=False)
                    bar.update()
                end = should_end()
                if end:
                    break
            if bar is not None:
                bar.close()
            if end is None:  # a whole epoch is done
                epoch, batch_in_epoch = epoch + 1, 0
                live.update(epoch=epoch)
                evaluate_and_save(end_of_epoch=True)
                saved_at = step
                end = should_end()
                tick = time.perf_counter()

        # ---- the end -----------------------------------------------------------------------------------------
        if end == "stopped":
            set_status(state="stopping")
            emit({"type": "status", "state": "stopping"})
            save("last")
            run.clear_stop()
        elif saved_at != step:  # a step or time limit ended the run inside an epoch
            evaluate_and_save(end_of_epoch=False)
        return finish(end or "finished")

    except BaseException as err:
        message = _one_line(err)
        if not isinstance(err, (TrainingError, DiskFullError, CheckpointRefused)):  # those say it all in one line
            traceback.print_exc()
        try:
            status = finish("failed", message)  # first: on a full disk the status matters more than the traceback
            emit({"type": "log", "level": "error", "message": traceback.format_exc()})
        except OSError as write_err:  # e.g. the disk is still full
            print(f"could not record the failure of {run.id}: {write_err}", flush=True)
            status = run.status
        if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit: recorded, then passed on
            raise
        return status
    finally:
        heartbeat.stop()
        if world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _initial_model(path: str, model_name: str):
    """The model saved at `path` (training.init_checkpoint), which must be of the class the run trains."""
    from ..paths import resolve_path
    from ..models.interface import BaseASRModel

    try:
        model = BaseASRModel.from_checkpoint(resolve_path(path))
    except (OSError, ValueError) as err:
        raise TrainingError(f"training.init_checkpoint = {path!r}: {err}") from None
    if type(model) is not get_model_class(model_name):
        raise TrainingError(f"training.init_checkpoint = {path!r} holds a {model.name!r} model; "
                            f"set model: {model.name} to start from it")
    return model


def lr_factor(step: int, warmup: int, schedule: str, total: float) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then inverse_sqrt, cosine (to `total`) or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup, 1) / max(step, 1))
    if schedule == "cosine" and math.isfinite(total):
        done = min(1.0, (step - warmup) / max(1.0, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * done))
    return 1.0


def _rng_state() -> dict:
    """Random generators' states (SpecAugment masks, dropout), so that a resumed run draws what it would have.

    Tensors and lists only, so that the checkpoint loads with `weights_only=True`."""
    return {"torch": torch.get_rng_state(), **rng_to_plain(np.random.get_state(), random.getstate()),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    numpy_state, python_state = rng_from_plain(state["numpy"], state["python"])
    np.random.set_state(numpy_state)
    random.setstate(python_state)
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _setup_distributed(device_name: str, world_size: int) -> torch.device:
    """The device to train on. Under torchrun (WORLD_SIZE > 1): join the process group, one GPU per rank."""
    if world_size <= 1:
        return _device(device_name)
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    if not use_cuda:
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError([f"training.device = {name!r}: no CUDA GPU is available (use auto or cpu)"])
    return torch.device(name)


def _max_over_ranks(value: int, device: torch.device, world_size: int) -> int:
    """The largest `value` over all DDP ranks (so that every rank skips, stops or goes on together)."""
    if world_size <= 1:
        return value
    t = torch.tensor([value], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return int(t.item())


def _one_line(err: BaseException) -> str:
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if isinstance(err, (TrainingError, DiskFullError, CheckpointRefused)):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class _Heartbeat(threading.Thread):
    """Rewrites status.json (step, epoch and the `updated` time) every few seconds, even during evaluation."""

    def __init__(self, write: Callable[..., object], live: dict, every: float = HEARTBEAT_SECONDS):
        super().__init__(daemon=True, name="asr-poc-heartbeat")
        self.write, self.live, self.every = write, live, every
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.write(**dict(self.live))
            except OSError:  # a full disk is reported by the training loop itself
                pass

    def stop(self) -> None:
        self.done.set()
