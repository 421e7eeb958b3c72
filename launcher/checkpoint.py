"""Checkpoints through the DeepSpeed engine, and which one a resumed run continues from.

DeepSpeed writes each rank's shard; only when every rank has returned does rank 0 write
`complete.json` into the tag directory and then replace `latest` atomically. So `latest` never
names a half-written checkpoint, and a run killed mid-save resumes from the previous one.
ZeRO 1-3 checkpoints are tied to their world size; resuming at another one first converts the
checkpoint to DeepSpeed's universal format (ds_to_universal), which every world size can load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from data.atomic import write_text_atomically
from launcher.distributed import DistributedContext, barrier

COMPLETE = "complete.json"
LATEST = "latest"


@dataclass(frozen=True)
class CheckpointInfo:
    directory: Path  # the checkpoints directory
    tag: str
    step: int
    world_size: int
    zero_stage: int

    @property
    def path(self) -> Path:
        return self.directory / self.tag


def save(engine, directory: Path, step: int, client_state: dict, context: DistributedContext, zero_stage: int) -> CheckpointInfo:
    tag = f"step{step:08d}"
    engine.save_checkpoint(str(directory), tag=tag, client_state=client_state, save_latest=False)
    barrier()  # every rank's shard is on disk
    info = CheckpointInfo(directory, tag, step, context.world_size, zero_stage)
    if context.is_main:
        marker = {"step": step, "world_size": context.world_size, "zero_stage": zero_stage}
        write_text_atomically(info.path / COMPLETE, json.dumps(marker))
        write_text_atomically(directory / LATEST, tag)
    barrier()
    return info


def read_info(directory: Path, tag: str) -> CheckpointInfo | None:
    marker = directory / tag / COMPLETE
    if not marker.is_file():
        return None
    data = json.loads(marker.read_text(encoding="utf-8"))
    return CheckpointInfo(directory, tag, int(data["step"]), int(data["world_size"]), int(data["zero_stage"]))


def find_latest(directory: Path) -> CheckpointInfo | None:
    """The checkpoint `latest` names if complete, else the highest complete one, else None."""
    if not directory.is_dir():
        return None
    pointer = directory / LATEST
    if pointer.is_file():
        info = read_info(directory, pointer.read_text(encoding="utf-8").strip())
        if info is not None:
            return info
    complete = [read_info(directory, p.name) for p in directory.glob("step*") if (p / COMPLETE).is_file()]
    return max(complete, key=lambda info: info.step, default=None)


def needs_universal(info: CheckpointInfo, world_size: int) -> bool:
    return info.zero_stage > 0 and info.world_size != world_size


def convert_to_universal(info: CheckpointInfo, context: DistributedContext) -> str:
    """Rank 0 converts once (kept beside the original); every rank then loads the universal tag."""
    universal = f"{info.tag}_universal"
    if context.is_main and not (info.directory / universal / COMPLETE).is_file():
        subprocess.run(
            [
                sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal",
                "--input_folder", str(info.path),
                "--output_folder", str(info.directory / universal),
                "--inject_missing_state",
            ],
            check=True, capture_output=True,
        )
        write_text_atomically(info.directory / universal / COMPLETE, (info.path / COMPLETE).read_text(encoding="utf-8"))
    barrier()
    return universal


def load(engine, info: CheckpointInfo, context: DistributedContext) -> dict:
    """Restore model, optimizer and engine state; returns the client state saved with it."""
    tag = convert_to_universal(info, context) if needs_universal(info, context.world_size) else info.tag
    path, client_state = engine.load_checkpoint(
        str(info.directory), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=False
    )
    if path is None:
        raise RuntimeError(f"{info.path}: DeepSpeed could not load this checkpoint")
    return client_state
