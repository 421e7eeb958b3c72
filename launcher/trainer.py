"""The training loop shared by pretraining and finetuning.

Dropout masks are seeded by the global stream position of each micro-batch, so a run's math does
not depend on the world size or on where it was resumed: with the same micro-batch size, 1 and 2
ranks compute the same losses up to the order of floating-point sums.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.loader import Loader, micro_batch_loader
from data.stream import ShardedExampleStream
from launcher import checkpoint, loss_scale as loss_scaling
from launcher.config import TrainConfig
from launcher.distributed import DistributedContext
from launcher.engine import build_engine, engine_reports_grad_norm, gradient_norm, set_learning_rate
from launcher.metrics import RunLogger, print_main
from launcher import precision as precision_mode
from launcher.preemption import StopRequest
from launcher.schedule import default_final_tokens, lr_multiplier
from model import GPT


@dataclass
class Schedule:
    total_steps: int
    final_tokens: int
    tokens_per_step: int


def plan(train: TrainConfig, block_size: int, items_per_epoch: int, pretraining_documents: int) -> Schedule:
    """Steps to run: ceil(epochs x items / global batch), capped by max_steps. The decay ends at
    train.final_tokens: a count, SPEC's default, or "run", the last token of train.epochs (not of
    max_steps, so a rehearsal cut short follows the full run's curve), which fits any number of examples."""
    steps = math.ceil(train.epochs * items_per_epoch / train.global_batch_size)
    tokens_per_step = train.global_batch_size * (block_size - 1)
    if train.final_tokens == "run":
        final_tokens = steps * tokens_per_step
    else:
        final_tokens = train.final_tokens or default_final_tokens(pretraining_documents, block_size)
    if train.max_steps is not None:
        steps = min(steps, train.max_steps)
    return Schedule(steps, final_tokens, tokens_per_step)


@dataclass(frozen=True)
class TrainingRun:
    """What the training loop reads of a phase: its name for messages, the run directory (checkpoints,
    metrics), the seed of the dropout masks, the optimizer and checkpoint settings, whether batches are
    built ahead (on a thread, or by how many worker processes), the timeout of the stop agreement, and
    what each checkpoint records for a later resume."""

    phase: str
    run_dir: Path
    seed: int
    train: TrainConfig
    prefetch: bool
    workers: int
    timeout_minutes: float
    resume_record: dict


def micro_batch_seed(seed: int, position: int) -> int:
    digest = hashlib.sha256(f"spangpt-dropout:{seed}:{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def rng_state() -> dict:
    """RNG states as tensors, strings and numbers only, so the checkpoint loads with weights_only=True."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])


def global_mean(value: torch.Tensor, context: DistributedContext) -> float:
    if context.world_size > 1:
        value = value.clone()
        torch.distributed.all_reduce(value)
        value /= context.world_size
    return float(value)


def train(run: TrainingRun, context: DistributedContext, device: torch.device, model: GPT,
          stream: ShardedExampleStream, schedule: Schedule, resume: checkpoint.CheckpointInfo | None):
    """Run the phase's optimizer steps, from `resume` (a checkpoint already checked against this run) or step 0.

    Returns the engine, its last complete checkpoint and whether the phase finished; after a stop
    signal it saves at the step the ranks agreed on and returns unfinished.
    """
    train_cfg = run.train
    directory = run.run_dir / "checkpoints"
    load_universal = resume is not None and checkpoint.needs_universal(resume, context.world_size, train_cfg.resume_universal)
    precision_mode.set_matmul_precision(train_cfg.precision, device)
    engine = build_engine(model, train_cfg, context, device, load_universal)
    scale = loss_scaling.for_engine(engine, train_cfg)
    step = tokens = 0
    if resume is not None:
        client = checkpoint.load(engine, resume, context, train_cfg.resume_universal)
        step, tokens = client["step"], client["tokens"]
        stream.load_state_dict(client["loader"])
        set_rng_state(client["rng"])
        if scale is not None and "loss_scale" in client:
            scale.load_state_dict(client["loss_scale"])
    # (a compiled module gets no hook: removing it mid-forward would recompile; the smoke runs uncompiled)
    dtype_check = precision_mode.ComputeDtypeCheck(engine.module, train_cfg.precision, enabled=not train_cfg.compile)
    accumulation = engine.gradient_accumulation_steps()
    print_main(context, (
        f"{run.phase}: world size {context.world_size} ({context.launcher}), ZeRO {train_cfg.zero_stage}, "
        f"{precision_mode.describe(train_cfg.precision, device)}, global batch {train_cfg.global_batch_size} = {context.world_size} ranks x "
        f"{stream.micro_batch_size} x {accumulation} accumulation, steps {step} -> {schedule.total_steps}"
        + (f" (resumed from {resume.tag})" if resume is not None else "")
    ))
    logger = RunLogger(run.run_dir, context, schedule.total_steps, step, run.phase, resumed_at=step)
    try:  # the progress bar ends its line even when training fails, so the error line stands alone
        stop = StopRequest(context, run.timeout_minutes)
        last_saved = resume
        window = ThroughputWindow()
        with micro_batch_loader(stream, run.prefetch, run.workers, device) as loader:
            engine.train()
            while step < schedule.total_steps:
                lr = train_cfg.learning_rate * lr_multiplier(
                    tokens + schedule.tokens_per_step, train_cfg.warmup_tokens, schedule.final_tokens)
                set_learning_rate(engine, lr)
                logging_step = (step + 1) % train_cfg.log_every == 0 or step + 1 == schedule.total_steps
                measure_norm = logging_step and not engine_reports_grad_norm(train_cfg)
                loss, grad_norm = optimizer_step(engine, loader, run.seed, device, scale, measure_norm)
                dtype_check.verify()
                step += 1
                tokens += schedule.tokens_per_step
                window.tokens += schedule.tokens_per_step
                logger.advance()
                if logging_step:
                    log_step(logger, engine, context, step, loss, grad_norm, lr, window, stream.epoch, scale)
                if train_cfg.checkpoint_every and step % train_cfg.checkpoint_every == 0 and step < schedule.total_steps:
                    last_saved = save(engine, run, directory, step, tokens, stream, context, scale)
                if step < schedule.total_steps and stop.agreed():
                    break
        if last_saved is None or last_saved.step != step:
            last_saved = save(engine, run, directory, step, tokens, stream, context, scale)
    finally:
        logger.close()
    finished = step == schedule.total_steps
    if scale is not None:
        print_main(context, f"{run.phase}: fp16 loss scale {scale.current():g}, {scale.skipped} of {step} steps "
                            "skipped on overflow")
    if not finished:
        print_main(context, f"{run.phase}: stop signal, checkpoint {last_saved.tag} saved; resume continues from step {step}")
    stop.restore_default_handlers()
    return engine, last_saved, finished


class ThroughputWindow:
    """Tokens trained since the last log step, and since when: tokens per second, then a new window."""

    def __init__(self) -> None:
        self.tokens, self.start = 0, time.perf_counter()

    def rate(self) -> float:
        now = time.perf_counter()
        rate = self.tokens / max(now - self.start, 1e-9)
        self.tokens, self.start = 0, now
        return rate


def log_step(logger: RunLogger, engine, context: DistributedContext, step: int, loss: torch.Tensor,
             grad_norm: float | None, lr: float, window: ThroughputWindow, epoch: float,
             scale: loss_scaling.LossScale | None) -> None:
    """The step's scalars, from rank 0. Reading the loss is the only sync of a step, so the
    throughput window is timed after it (on a GPU, before it would time kernel launches only).
    Gradient norms are unscaled (the ZeRO optimizers report them so; ZeRO 0's is divided here)."""
    loss_value = global_mean(loss, context)
    tokens_per_second = window.rate()
    if grad_norm is None:
        grad_norm = engine.get_global_grad_norm()
    values = {
        "train/loss": loss_value,
        "train/lr": lr,
        "train/grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
        "train/tokens_per_second": tokens_per_second,
        "train/epoch": epoch,
    }
    if scale is not None:
        values["train/loss_scale"] = scale.current()
        values["train/skipped_steps"] = float(scale.skipped)
    logger.scalars(step, values)
    if scale is not None:
        loss_scaling.check(scale)


def optimizer_step(engine, loader: Loader, seed: int, device: torch.device, scale: loss_scaling.LossScale | None,
                   measure_grad_norm: bool) -> tuple[torch.Tensor, float | None]:
    """One optimizer step over this rank's accumulation micro-batches: (mean loss, grad norm or None).

    Each micro-batch's dropout is seeded by its global stream position. DeepSpeed averages the
    gradients and steps the optimizer on the last micro-batch; the norm, where the engine does not
    report it, is read after that backward (averaged, not yet clipped, unscaled). Autocast, where
    the precision asks for it, is DeepSpeed's own, inside `engine(x, y)` (launcher/precision.py).
    """
    accumulation = engine.gradient_accumulation_steps()
    loss_sum = torch.zeros((), device=device)
    grad_norm = None
    if scale is not None:
        scale.prepare()
    for micro_step in range(accumulation):
        position, x, y = loader.next_micro_batch()
        torch.manual_seed(micro_batch_seed(seed, position))
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        _, loss = engine(x, y)
        engine.backward(loss)
        last = micro_step == accumulation - 1
        if measure_grad_norm and last:
            grad_norm = gradient_norm(engine.module) / (scale.current() if scale is not None else 1.0)
        if scale is not None and last:
            scale.before_update()
        engine.step()
        if scale is not None and last:
            scale.after_update()
        loss_sum += loss.detach()
    return loss_sum / accumulation, grad_norm


def save(engine, run: TrainingRun, directory: Path, step: int, tokens: int, stream: ShardedExampleStream,
         context: DistributedContext, scale: loss_scaling.LossScale | None) -> checkpoint.CheckpointInfo:
    """A checkpoint holding exactly what resume restores: step, tokens, loader position, RNG states and,
    for fp16, the loss scale (DeepSpeed saves none of its GradScaler)."""
    client_state = {"step": step, "tokens": tokens, "loader": stream.state_dict(), "rng": rng_state()}
    if scale is not None:
        client_state["loss_scale"] = scale.state_dict()
    return checkpoint.save(engine, directory, step, client_state, context, run.train.zero_stage, run.resume_record)
