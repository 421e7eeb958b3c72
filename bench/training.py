"""Benchmarks 1 and 2: training throughput at SPEC's reference size, and scaling over ranks.

spangpt runs its real path (launcher/train.py: config, DeepSpeed engine, sharded loader, logging)
for a few steps with `train.log_every=1`; every step's tokens per second come from metrics.jsonl.
The baseline is bench/reference_train.py (python -m bench.reference_train). The first steps of each run are warm-up (allocator,
caches: 10-25% slow here) and left out; the rate is tokens over time for the rest. Tokens are
every target position of the global batch (128 x 127), as SPEC counts them, padding included, so
both sides count the same work whatever each does with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import ROOT, DataSet, last_json_line, run_checked
from launcher.distributed import free_port

WARMUP_STEPS = 2


def steady_rate(seconds: list[float], tokens_per_step: int) -> float:
    if len(seconds) <= WARMUP_STEPS:
        raise ValueError(f"need more than {WARMUP_STEPS} steps to measure past the warm-up")
    measured = seconds[WARMUP_STEPS:]
    return tokens_per_step * len(measured) / sum(measured)


def spangpt_tokens_per_second(data: DataSet, run_dir: Path, ranks: int, threads: int, steps: int) -> float:
    """Tokens/s of the launcher at SPEC's size and batch (128), ZeRO 0, fp32, on `ranks` processes."""
    args = ["--config", str(ROOT / "configs" / "pretrain.yaml"), "--set", f"run_dir={run_dir}",
            f"data.corpus={data.corpus}", f"train.max_steps={steps}", "train.log_every=1", "train.resume=never"]
    if ranks == 1:
        command = [sys.executable, str(ROOT / "launcher" / "train.py"), *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                   "--master_port", str(free_port()), str(ROOT / "launcher" / "train.py"), *args]
    run_checked(command, threads)
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    rates = [json.loads(line)["train/tokens_per_second"] for line in lines]
    tokens_per_step = 128 * 127
    return steady_rate([tokens_per_step / r for r in rates], tokens_per_step)


def reference_tokens_per_second(data: DataSet, threads: int, steps: int) -> float:
    out = last_json_line(run_checked([sys.executable, "-m", "bench.reference_train", str(data.corpus),
                                      "--steps", str(steps)], threads))
    return steady_rate(out["seconds"], out["tokens_per_step"])
