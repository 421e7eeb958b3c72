"""Two ranks: rank 1 stays away from a gradient reduction over DeepSpeed's data-parallel group, and
rank 0 prints how long it waited before the collective gave up (run by tests/test_shutdown.py)."""

from __future__ import annotations

import json
import time

import torch

from launcher.distributed import detect_context, prepare_environment, start, stop

if __name__ == "__main__":
    context = detect_context()
    prepare_environment(context)
    start(context, "gloo", 0.05)  # distributed.timeout_minutes: 3 s
    from deepspeed.utils import groups

    group = groups._get_data_parallel_group()  # what the engine reduces gradients over
    if context.rank == 0:
        began = time.monotonic()
        try:
            torch.distributed.all_reduce(torch.ones(4), group=group)
            outcome = "completed"
        except RuntimeError as exc:
            outcome = str(exc).splitlines()[0]
        print(json.dumps({"waited": round(time.monotonic() - began, 1), "outcome": outcome}), flush=True)
    else:
        time.sleep(12)  # away, as a rank behind a cut link is
    stop()
