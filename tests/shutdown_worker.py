"""A rank that builds a DeepSpeed engine, leaves the process group with launcher.distributed.stop and
prints which of DeepSpeed's process-group references are still set (run by tests/test_shutdown.py)."""

from __future__ import annotations

import json

from bench.zero_memory import measure
from launcher.distributed import detect_context, prepare_environment, start, stop


def held_groups() -> list[str]:
    from deepspeed.utils import groups

    names = ("_WORLD_GROUP", "_DATA_PARALLEL_GROUP", "_MODEL_PARALLEL_GROUP", "_ZERO_PARAM_INTRA_PARALLEL_GROUP",
             "_EXPERT_PARALLEL_GROUP", "_EXPERT_DATA_PARALLEL_GROUP", "_ALL_TO_ALL_GROUP")
    return [name for name in names if getattr(groups, name) not in (None, {})]


if __name__ == "__main__":
    context = detect_context()
    prepare_environment(context)
    measure(0, context, start(context, "auto", 5))
    before = held_groups()
    stop()
    print(json.dumps({"rank": context.rank, "before": before, "after": held_groups()}), flush=True)
