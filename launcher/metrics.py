"""Rank 0's view of a run: TensorBoard scalars and text, metrics.jsonl, and a tqdm bar.

Every other rank gets a logger whose methods do nothing, so call sites need no rank checks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from launcher.distributed import DistributedContext


class RunLogger:
    def __init__(self, run_dir: Path, context: DistributedContext, total_steps: int, initial_step: int, phase: str) -> None:
        self.enabled = context.is_main
        if not self.enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.bar = None
        if total_steps:  # evaluation logs scalars but has no steps to show
            self.bar = tqdm(total=total_steps, initial=initial_step, desc=phase, unit="step", file=sys.stderr,
                            dynamic_ncols=True, mininterval=1.0)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self.jsonl.flush()
        if self.bar is not None and "train/loss" in values:
            self.bar.set_postfix(loss=f"{values['train/loss']:.4f}", lr=f"{values.get('train/lr', 0):.2e}")

    def text(self, tag: str, markdown: str, step: int) -> None:
        if self.enabled:
            self.writer.add_text(tag, markdown, step)

    def advance(self, steps: int = 1) -> None:
        if self.enabled and self.bar is not None:
            self.bar.update(steps)

    def close(self) -> None:
        if self.enabled:
            if self.bar is not None:
                self.bar.close()
            self.writer.close()
            self.jsonl.close()


def print_main(context: DistributedContext, message: str) -> None:
    if context.is_main:
        print(message, flush=True)
