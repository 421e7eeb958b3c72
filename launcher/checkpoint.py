"""Checkpoints through the DeepSpeed engine, and which one a resumed run continues from.

DeepSpeed writes each rank's shard; only when every rank has returned does rank 0 write
`complete.json` (step, world size, ZeRO stage, and the run's config and vocabulary, which a resume
is checked against: launcher/resume.py) into the tag directory and then replace `latest` atomically. So `latest` never
names a half-written checkpoint, and a run killed mid-save resumes from the previous one.
ZeRO 1-3 checkpoints are tied to their world size; resuming at another one first converts the
checkpoint to DeepSpeed's universal format (ds_to_universal), which every world size can load.

DeepSpeed unpickles checkpoint files with torch.load(weights_only=False), which runs whatever code
a pickle names. Before it (or the converter) reads a checkpoint, every file is loaded once with
weights_only=True, allowing tensors, containers and DeepSpeed's three plain records; a file that
names anything else is refused with an error and nothing in it runs.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data.atomic import write_text_atomically
from data.errors import DataError
from launcher.distributed import DistributedContext, barrier, collective_failure

COMPLETE = "complete.json"
LATEST = "latest"


@dataclass(frozen=True)
class CheckpointInfo:
    directory: Path  # the checkpoints directory
    tag: str
    step: int
    world_size: int
    zero_stage: int
    record: dict[str, Any] | None = None  # the saving run's config and vocabulary (None: saved before they were kept)

    @property
    def path(self) -> Path:
        return self.directory / self.tag


def save(engine, directory: Path, step: int, client_state: dict, context: DistributedContext, zero_stage: int,
         record: dict[str, Any]) -> CheckpointInfo:
    """Every rank's shard, then complete.json and `latest`. client_state holds what resume restores
    (step, tokens, loader position, RNG); `record` what it checks (config, vocabulary)."""
    tag = f"step{step:08d}"
    try:
        engine.save_checkpoint(str(directory), tag=tag, client_state=client_state, save_latest=False)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        if context.is_main:
            shutil.rmtree(directory / tag, ignore_errors=True)  # never referenced: no complete.json
        if isinstance(exc, RuntimeError) and collective_failure(exc, 0) is not None:
            raise  # a peer lost during the save's collectives: the trainer's line names it, not the disk
        previous = find_latest(directory)
        kept = f"{previous.tag} is intact and resume continues from it" if previous else "no earlier checkpoint exists"
        reason = write_failure(exc, directory)
        raise DataError(str(directory / tag), f"cannot write this checkpoint ({reason}); {kept}") from None
    barrier()  # every rank's shard is on disk
    info = CheckpointInfo(directory, tag, step, context.world_size, zero_stage, record)
    if context.is_main:
        marker = {"step": step, "world_size": context.world_size, "zero_stage": zero_stage, "record": record}
        write_text_atomically(info.path / COMPLETE, json.dumps(marker))
        write_text_atomically(directory / LATEST, tag)
    barrier()
    return info


def write_failure(exc: BaseException, directory: Path) -> str:
    """torch.save reports a full disk as an internal assertion; say what it means."""
    if getattr(exc, "strerror", None):
        return exc.strerror
    try:
        stats = os.statvfs(directory)
        if stats.f_bavail * stats.f_frsize < 1 << 20:
            return "No space left on device"
    except OSError:
        pass
    return str(exc).splitlines()[0]


def read_info(directory: Path, tag: str) -> CheckpointInfo | None:
    marker = directory / tag / COMPLETE
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        return CheckpointInfo(directory, tag, int(data["step"]), int(data["world_size"]), int(data["zero_stage"]),
                              data.get("record"))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(str(marker), f"damaged checkpoint marker ({exc}); remove {directory / tag} to resume "
                                     "from the checkpoint before it") from None


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


def needs_universal(info: CheckpointInfo, world_size: int, forced: bool = False) -> bool:
    """ZeRO 1-3 checkpoints load at another world size only through the universal format;
    `forced` (train.resume_universal) takes that path at the saving world size too."""
    return info.zero_stage > 0 and (forced or info.world_size != world_size)


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


def deepspeed_records() -> list:
    """The non-tensor classes DeepSpeed 0.19 pickles into ZeRO checkpoints: plain data, no code."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


def refuse_code_in_pickles(path: Path) -> None:
    """Load every checkpoint file under `path` with weights_only=True (memory-mapped, so cheap)."""
    for file in sorted(path.rglob("*.pt")):
        try:
            with torch.serialization.safe_globals(deepspeed_records()):
                torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            named = re.search(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>", str(exc))
            what = f"it names {named.group(1) or named.group(2)}" if named else str(exc).splitlines()[0][:200]
            raise DataError(str(file), f"refusing to load this checkpoint file: {what}; only tensors, containers "
                                       "and DeepSpeed's records may be unpickled") from None


def load(engine, info: CheckpointInfo, context: DistributedContext, universal: bool = False) -> dict:
    """Restore model, optimizer and engine state; returns the client state saved with it.
    `universal`: load through DeepSpeed's universal format even at the saving world size."""
    refuse_code_in_pickles(info.path)
    tag = convert_to_universal(info, context) if needs_universal(info, context.world_size, universal) else info.tag
    if tag != info.tag:
        refuse_code_in_pickles(info.directory / tag)
    path, client_state = engine.load_checkpoint(
        str(info.directory), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=False
    )
    if path is None:
        raise RuntimeError(f"{info.path}: DeepSpeed could not load this checkpoint")
    place_optimizer_state(getattr(engine.optimizer, "optimizer", engine.optimizer), info.directory / tag)
    return client_state


def place_optimizer_state(optimizer: torch.optim.Optimizer, source: Path) -> None:
    """Put every optimizer state tensor where the optimizer's step will look for it, then check.

    DeepSpeed's universal loaders assign `state['step']` as read from disk: a CPU tensor, or a
    number (base_optimizer.py, zero/stage3.py's load_hp_checkpoint_state). Fused or capturable
    AdamW on CUDA wants every state tensor, `step` included, on its parameter's device (else
    "Expected all tensors to be on the same device", pytorch/pytorch#124133); the for-each AdamW
    wants `step` as a CPU tensor. Moments always live beside their parameter.
    """
    for group in optimizer.param_groups:
        on_device = bool(group.get("fused") or group.get("capturable"))
        for param in group["params"]:
            state = optimizer.state.get(param)
            if not state:
                continue
            for key, value in list(state.items()):
                if key == "step":
                    step = value if torch.is_tensor(value) else torch.tensor(float(value))
                    state[key] = step.to(device=param.device if on_device else "cpu", dtype=torch.float32)
                elif torch.is_tensor(value) and value.device != param.device:
                    state[key] = value.to(param.device)
            for key, value in state.items():
                expected = param.device if (key != "step" or on_device) else torch.device("cpu")
                if torch.is_tensor(value) and value.device != expected:
                    raise DataError(str(source), f"optimizer state '{key}' loaded on {value.device}, but its "
                                                 f"parameter's optimizer step needs it on {expected}")
