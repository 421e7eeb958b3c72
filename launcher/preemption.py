"""Stop requests: SIGTERM (scancel, torchrun passing on a preemption) or SIGUSR1 (SLURM's --signal).

A signal only sets a flag; at each step boundary the ranks agree through a tiny all-reduce on a
CPU (gloo) group, so every rank stops after the same step, saves the same checkpoint and exits
cleanly. The CPU group keeps the check off the GPU: no device synchronisation per step.
"""

from __future__ import annotations

import datetime
import signal

import torch

from launcher.distributed import DistributedContext

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    def __init__(self, context: DistributedContext, timeout_minutes: float) -> None:
        self.context = context
        self.received: int | None = None
        # the configured collective timeout, like the main group's: a dead peer ends the wait in minutes
        timeout = datetime.timedelta(minutes=timeout_minutes)
        self.group = torch.distributed.new_group(backend="gloo", timeout=timeout) if context.world_size > 1 else None
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        self.received = signum

    def agreed(self) -> bool:
        """True on every rank once any rank has received a stop signal (call at step boundaries)."""
        flag = torch.tensor([1 if self.received is not None else 0], dtype=torch.int32)
        if self.group is not None:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=self.group)
        return bool(flag.item())

    def restore_default_handlers(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
