"""ZeRO-3 on 2 ranks holds half of ZeRO-0's parameters, gradients and optimizer state per rank.

Measured by bench/zero_memory.py on real engines: it walks the tensors each engine owns after one
optimizer step and the next micro-batch's backward, and counts every storage once.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from launch import ROOT, check, worker_env
from launcher.distributed import free_port


def measured_bytes(stage: int) -> dict[str, int]:
    result = check(subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         "-m", "bench.zero_memory", str(stage)],
        cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=300))
    line = [line for line in result.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(line)["bytes"]


def test_zero3_halves_every_kind_of_state_per_rank():
    zero0, zero3 = measured_bytes(0), measured_bytes(3)
    parameters = 3_323_392 * 4  # SPEC's vanilla model, fp32
    assert zero0["parameters"] == parameters and zero0["gradients"] == parameters
    assert zero0["optimizer state"] == pytest.approx(2 * parameters, abs=1024)  # Adam's two moments (+ step counters)
    # ZeRO-3: each rank keeps half of each (no second fp32 master copy, no unpartitioned small weights)
    for kind in ("parameters", "gradients", "optimizer state"):
        assert zero3[kind] == pytest.approx(zero0[kind] / 2, abs=1024), kind
    assert sum(zero3.values()) <= 0.55 * sum(zero0.values())
