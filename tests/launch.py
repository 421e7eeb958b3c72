"""Run the real launcher as a user would: plain python, torchrun or the deepspeed launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from launcher.distributed import free_port

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "launcher" / "train.py")
BIN = Path(sys.executable).parent


def launch(configs: list[str], overrides: list[str], nproc: int = 1, launcher: str = "torchrun",
           extra_env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    args = ["--config", *configs, "--set", *overrides] if overrides else ["--config", *configs]
    if launcher == "python":
        command = [sys.executable, TRAIN, *args]
    elif launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                   "--master_port", str(free_port()), TRAIN, *args]
    elif launcher == "deepspeed":
        command = [str(BIN / "deepspeed"), "--num_gpus", str(nproc), "--master_port", str(free_port()), TRAIN, *args]
    else:
        raise ValueError(launcher)
    return subprocess.run(command, cwd=ROOT, env=worker_env(extra_env), capture_output=True, text=True, timeout=timeout)


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without inherited ranks, one thread per process, the repository
    importable, and no GPU: the suite's 2-rank runs are CPU processes on gloo on every machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    path = os.pathsep.join([str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
    env.update({"OMP_NUM_THREADS": "1", "PYTHONPATH": path, "CUDA_VISIBLE_DEVICES": ""}, **(extra or {}))
    return env


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["train/loss"] for m in metrics(run_dir) if "train/loss" in m}


def check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result
