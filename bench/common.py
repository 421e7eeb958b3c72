"""What every benchmark shares: where the data is, how many cores, how to launch, how to print.

Benchmarks compare against a baseline measured in the same run, so machine noise and load cancel
in the ratio. They read the real data set from datasets/birthplaces, the README's place for it (or
$SPANGPT_REAL_DATA), and otherwise generate a synthetic world, so `make bench` runs on a fresh machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("SPANGPT_REAL_DATA", ROOT / "datasets" / "birthplaces"))
SPEC_CONFIG = ROOT / "configs" / "pretrain.yaml"  # SPEC's model and schedule live there, not in code


def spec_run_config(*overrides: str):
    """SPEC's pretraining config (configs/pretrain.yaml) with `key=value` overrides."""
    from launcher.config import load_config

    return load_config(SPEC_CONFIG, list(overrides))


def spec_model_config(vocab_size: int, variant: str = "vanilla"):
    """SPEC's model over a vocabulary of `vocab_size`."""
    from launcher.config import gpt_config

    return gpt_config(spec_run_config(f"model.variant={variant}"), vocab_size)


@dataclass(frozen=True)
class DataSet:
    directory: Path
    kind: str  # "real" or "synthetic"

    @property
    def corpus(self) -> Path:
        return self.directory / "wiki.txt"

    @property
    def finetune(self) -> Path:
        return self.directory / "birth_places_train.tsv"

    @property
    def dev(self) -> Path:
        return self.directory / "birth_dev.tsv"


def data_set(scratch: Path) -> DataSet:
    """The real data when present; otherwise a synthetic world of the real set's sizes."""
    if (REAL_DATA / "wiki.txt").is_file():
        return DataSet(REAL_DATA, "real")
    from data.synthetic import write_world

    out = scratch / "world"
    write_world(out, seed=0, train=2000, dev=500, test=437, places=100, overwrite=True)
    return DataSet(out, "synthetic")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def importable_path() -> str:
    """PYTHONPATH with the repository first and the caller's entries kept (a GPU machine's own
    site-packages may live there)."""
    return os.pathsep.join([str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def child_env(threads: int) -> dict[str, str]:
    """A clean environment for a benchmark process: its own thread count, no inherited rank, and no
    GPU: these benchmarks measure CPU processes (bench/gpu.sh measures a GPU)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=importable_path(), PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    return env


def run_checked(command: list[str], threads: int, timeout: float = 3600) -> str:
    """Run a benchmark process; on failure, show its output's tail and stop the benchmark."""
    result = subprocess.run(command, cwd=ROOT, env=child_env(threads), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def last_json_line(stdout: str) -> dict:
    """Worker processes print their result as the last JSON line of stdout."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result line in:\n{stdout[-2000:]}")


def scratch_directory() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="spangpt-bench-")


@dataclass(frozen=True)
class Row:
    """One line of the results table: spangpt's figure against the baseline's, and the goal."""

    name: str
    spangpt: str
    baseline: str
    ratio: float
    goal: float | None  # minimum ratio (or maximum, with at_most)
    at_most: bool = False

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        met = self.ratio <= self.goal if self.at_most else self.ratio >= self.goal
        return ("met" if met else "MISSED") + f" ({'<=' if self.at_most else '>='} {self.goal:g})"


def print_table(rows: list[Row], out=sys.stdout) -> None:
    headers = ("benchmark", "spangpt", "baseline", "ratio", "goal")
    cells = [headers] + [(r.name, r.spangpt, r.baseline, f"{r.ratio:.2f}x", r.verdict) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(lines), file=out, flush=True)
