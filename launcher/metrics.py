"""Rank 0's view of a run: TensorBoard scalars and text, metrics.jsonl, and a tqdm bar.

Every other rank gets a logger whose methods do nothing, so call sites need no rank checks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from launcher.distributed import DistributedContext


def forget_after(metrics: Path, step: int) -> None:
    """Drop metrics.jsonl's records past step: an attempt that crashed trained steps its checkpoint does
    not hold, and the resumed attempt logs them again (written to a temporary name, then renamed)."""
    if not metrics.exists():
        return
    lines = metrics.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        partial = metrics.with_name(f".{metrics.name}.tmp")
        partial.write_text("".join(kept), encoding="utf-8")
        partial.replace(metrics)


class RunLogger:
    def __init__(self, run_dir: Path, context: DistributedContext, total_steps: int, initial_step: int, phase: str,
                 resumed_at: int | None = None) -> None:
        """resumed_at: the step training starts from; what an earlier attempt logged after it is dropped,
        from metrics.jsonl and (purge_step) from TensorBoard, so a step appears once however often it ran."""
        self.enabled = context.is_main
        if not self.enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        purge_step = None
        if resumed_at is not None:
            forget_after(run_dir / "metrics.jsonl", resumed_at)
            purge_step = resumed_at + 1
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge_step)
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
