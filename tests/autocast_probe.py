"""launcher/train.py with a forward hook on every Linear, recording the dtypes its training products
come out in (written as JSON to $AUTOCAST_PROBE_OUT at exit). With AUTOCAST_PROBE_AS_CUDA=1,
`torch.is_autocast_enabled()` without a device argument answers for the CPU, as on a GPU it answers
for CUDA, the device being trained on: what DeepSpeed's engine.forward checks. With
AUTOCAST_PROBE_OUTER=1, every engine forward runs inside an outer bf16 torch.autocast, as spangpt's
forward did before DeepSpeed's torch_autocast took over (run by tests/test_precision.py)."""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
from pathlib import Path

import torch

seen: set[str] = set()


def record(module: torch.nn.Module, _inputs, output) -> None:
    if isinstance(module, torch.nn.Linear) and torch.is_grad_enabled():  # training forwards, not evaluation
        seen.add(str(output.dtype).removeprefix("torch."))


if os.environ.get("AUTOCAST_PROBE_AS_CUDA") == "1":
    device_autocast = torch.is_autocast_enabled
    torch.is_autocast_enabled = lambda *args, **kwargs: device_autocast(*args, **kwargs) if args or kwargs \
        else device_autocast("cpu")

if os.environ.get("AUTOCAST_PROBE_OUTER") == "1":
    from deepspeed.runtime.engine import DeepSpeedEngine

    engine_forward = DeepSpeedEngine.forward

    def outer_autocast_forward(self, *args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return engine_forward(self, *args, **kwargs)

    DeepSpeedEngine.forward = outer_autocast_forward

torch.nn.modules.module.register_module_forward_hook(record)
if os.environ.get("RANK", "0") == "0":
    atexit.register(lambda: Path(os.environ["AUTOCAST_PROBE_OUT"]).write_text(json.dumps(sorted(seen))))
train = Path(__file__).resolve().parents[1] / "launcher" / "train.py"
sys.argv = [str(train), *sys.argv[1:]]
runpy.run_path(str(train), run_name="__main__")
