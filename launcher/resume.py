"""What a resumed run must share with the checkpoint it continues from.

Each complete checkpoint records the resolved config and the vocabulary of the run that saved it
(checkpoint.py writes them into complete.json). Resuming from it with another model shape, learning
rate, batch size, schedule, variant, data or vocabulary would silently continue a different
experiment, so it is refused before anything is written, naming every key that differs. The keys
that may change on resume are config.RESUME_MAY_CHANGE.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from data.vocab import Vocabulary
from launcher import checkpoint
from launcher.config import RESUME_MAY_CHANGE, ConfigError, RunConfig, config_differences, with_defaults


def resume_record(config: RunConfig, vocab: Vocabulary) -> dict[str, Any]:
    """What a checkpoint records of its run, for the check below."""
    return {"config": config.model_dump(mode="json"), "vocab": vocab.itos}


def may_change(key: str) -> bool:
    return any(key == allowed or key.startswith(f"{allowed}.") for allowed in RESUME_MAY_CHANGE)


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'key: old there, new now' for every key outside the allow-list whose value differs."""
    return [line for key, line in config_differences(with_defaults(saved), now).items() if not may_change(key)]


def find_resume_point(config: RunConfig, record: dict[str, Any], is_main: bool) -> checkpoint.CheckpointInfo | None:
    """The checkpoint this run continues from (None: start at step 0), refused if it belongs to another run."""
    directory = Path(config.run_dir) / "checkpoints"
    if config.train.resume == "never":
        return None
    info = checkpoint.find_latest(directory)
    if info is None:
        if config.train.resume == "required":
            raise ConfigError(f"train.resume: required, but {directory} holds no complete checkpoint")
        return None
    if info.zero_stage != config.train.zero_stage:
        raise ConfigError(
            f"train.zero_stage: {info.path} was saved at ZeRO stage {info.zero_stage}, not {config.train.zero_stage}; "
            f"resume with train.zero_stage={info.zero_stage}, or start a new run_dir from its export with init_from")
    fresh = "start fresh with another run_dir (or train.resume=never, which overwrites its checkpoints)"
    if info.record is None and is_main:
        print(f"warning: {info.path} was saved before checkpoints recorded their config; resuming without checking "
              "that this run's config matches it", file=sys.stderr, flush=True)
    if info.record is not None:
        found = differences(info.record.get("config", {}), record["config"])
        if found:
            raise ConfigError(f"train.resume: {info.path} was saved with another config ({'; '.join(found)}); "
                              f"resume with the config it was saved with, or {fresh}")
        if info.record.get("vocab") != record["vocab"]:
            raise ConfigError(f"train.resume: {info.path} was saved with another vocabulary "
                              f"({len(info.record.get('vocab') or [])} ids there, {len(record['vocab'])} now: has the corpus "
                              f"changed?); {fresh}")
    return info
