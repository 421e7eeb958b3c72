"""fp16's dynamic loss scale: kept by one object per run, saved in checkpoints, counted when it skips a step.

DeepSpeed 0.19.8 with `torch_autocast` in float16 builds a torch.amp.GradScaler, and saves none of
its state in checkpoints, so a resumed run restarts at scale 2^16 and its losses part from an
uninterrupted run's. Where the scaler lives differs by ZeRO stage:

- ZeRO 0: the engine's own GradScaler scales the loss, unscales before clipping and skips the
  optimizer step when a gradient is not finite. It is correct; `GradScalerLossScale` reads and
  restores its state and notices its back-offs.
- ZeRO 1-3: the ZeRO optimizer's GradScaler scales the loss, but the optimizer computes the norm,
  clips and detects overflow with its own loss scale, which stays 1: it clips the *scaled*
  gradients, the GradScaler then divides them again, and an overflow returns before the
  GradScaler backs off, so the scale never falls and every later step is skipped. So the
  optimizer's GradScaler is removed and the scale is given to the optimizer itself
  (`override_loss_scale`), which then scales the loss, unscales and clips in one place and skips
  the step on a non-finite norm; `ZeroLossScale` moves the scale the way GradScaler would (halve
  on overflow, double after `growth_interval` clean steps).

A skipped step still advances the step and token counters and the learning-rate schedule (the
batch is consumed and lost, as in DeepSpeed's and Megatron's fp16), so the run's length and data
order do not depend on overflows; `skipped` counts them for the metrics.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from launcher.config import TrainConfig

GROWTH_FACTOR, BACKOFF_FACTOR, GROWTH_INTERVAL = 2.0, 0.5, 2000  # torch.amp.GradScaler's defaults
MIN_SCALE = 1.0  # DeepSpeed's own dynamic scaler stops here too: below it, overflows are not the scale's doing


class LossScale(Protocol):
    skipped: int

    def prepare(self) -> None: ...
    def before_update(self) -> None: ...
    def after_update(self) -> None: ...
    def current(self) -> float: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GradScalerLossScale:
    """ZeRO 0: the engine's GradScaler, observed. A skip shows as a smaller scale after the step;
    the comparison stays on the device (no sync per step) until `skipped` is read at a log step."""

    def __init__(self, scaler: torch.amp.GradScaler, initial_scale: float) -> None:
        self.scaler = scaler
        scaler._init_scale = initial_scale  # read when the first scale() creates the scale tensor
        self._skipped = 0
        self._pending: list[torch.Tensor] = []
        self._before: torch.Tensor | None = None

    def prepare(self) -> None:
        pass  # the engine's GradScaler scales the loss itself

    def before_update(self) -> None:
        scale = getattr(self.scaler, "_scale", None)  # created by the first scale(), in this step's backward
        self._before = scale.clone() if scale is not None else None

    def after_update(self) -> None:
        if self._before is not None:
            self._pending.append(self.scaler._scale < self._before)
            self._before = None

    @property
    def skipped(self) -> int:
        if self._pending:
            self._skipped += int(torch.stack(self._pending).sum())
            self._pending = []
        return self._skipped

    def current(self) -> float:
        return float(self.scaler.get_scale())

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scaler.load_state_dict(state["scaler"])
        self._skipped, self._pending = int(state["skipped"]), []


class ZeroLossScale:
    """ZeRO 1-3: the scale given to the ZeRO optimizer, moved as GradScaler moves its own."""

    def __init__(self, optimizer, initial_scale: float) -> None:
        self.optimizer = optimizer
        optimizer.torch_autocast_gradscaler = None  # the optimizer scales, unscales and clips with one scale
        self.scale, self.growth_tracker, self.skipped = initial_scale, 0, 0
        optimizer.override_loss_scale(self.scale)

    def prepare(self) -> None:
        self.optimizer.override_loss_scale(self.scale)  # before the step's first backward scales the loss

    def before_update(self) -> None:
        pass

    def after_update(self) -> None:
        if self.optimizer.overflow:  # a non-finite gradient norm: DeepSpeed skipped the update
            self.scale *= BACKOFF_FACTOR
            self.growth_tracker = 0
            self.skipped += 1
        else:
            self.growth_tracker += 1
            if self.growth_tracker == GROWTH_INTERVAL:
                self.scale *= GROWTH_FACTOR
                self.growth_tracker = 0

    def current(self) -> float:
        return self.scale

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "growth_tracker": self.growth_tracker, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.growth_tracker = float(state["scale"]), int(state["growth_tracker"])
        self.skipped = int(state["skipped"])
        self.optimizer.override_loss_scale(self.scale)


def check(scale: LossScale) -> None:
    """Stop a run whose gradients overflow at every scale (a NaN in the model, say): halving on,
    the scale would reach 0 and every later step would update from zero gradients."""
    if scale.current() < MIN_SCALE:
        from launcher.config import ConfigError

        raise ConfigError(f"train.precision: fp16, but the loss scale fell below {MIN_SCALE:g} after {scale.skipped} "
                          "skipped steps: the gradients are not finite at any scale; train in bf16 or fp32")


def for_engine(engine, train: TrainConfig) -> LossScale | None:
    """The run's loss scale: None unless fp16; it starts at 2^train.loss_scale_power."""
    if train.precision != "fp16":
        return None
    initial = 2.0**train.loss_scale_power
    scaler = getattr(engine, "torch_autocast_z0_gradscaler", None)
    if scaler is not None:
        return GradScalerLossScale(scaler, initial)
    if getattr(engine.optimizer, "torch_autocast_gradscaler", None) is None:
        raise RuntimeError("fp16: DeepSpeed built no GradScaler for torch_autocast (another DeepSpeed version?)")
    return ZeroLossScale(engine.optimizer, initial)
