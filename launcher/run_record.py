"""`run.json` in every run directory: where, on what and for how long each attempt at the phase ran.

The report (python -m experiments.report) and the sweep read it for the wall time and device of each run,
and for `others_cores`, the cores other processes on the machine used meanwhile (launcher.machine_share). A run resumed
after preemption or a failure has several attempts; its wall time is their sum. Rank 0 writes the
file after each attempt, under a temporary name and renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from data.atomic import write_text_atomically
from data.errors import DataError
from launcher.distributed import DistributedContext
from launcher.machine_share import MachineShare

RECORD_NAME = "run.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(context: DistributedContext, device: torch.device) -> str:
    """E.g. "2 x NVIDIA H100 80GB HBM3 (1 node)" or "2 x CPU process (1 thread each), AMD EPYC 7B13 (1 node)"."""
    nodes = max(1, context.world_size // max(1, context.local_world_size))
    where = f"{nodes} node" + ("s" if nodes > 1 else "")
    if device.type == "cuda":
        return f"{context.world_size} x {torch.cuda.get_device_name(device)} ({where})"
    threads = torch.get_num_threads()
    return (f"{context.world_size} x CPU process ({threads} thread{'s' if threads > 1 else ''} each), "
            f"{cpu_model()}, {os.cpu_count()} cores ({where})")


def source_commit() -> str | None:
    """The checkout's commit (with -dirty when it has uncommitted changes), or None outside git.
    SPANGPT_COMMIT names it where the code travelled without its git directory (bench/gpu.sh)."""
    if os.environ.get("SPANGPT_COMMIT"):
        return os.environ["SPANGPT_COMMIT"]
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True,
                                text=True, timeout=10, cwd=Path(__file__).resolve().parents[1])
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def seconds_since_process_start() -> float:
    """How long this process has run (Linux: /proc), so a run's wall time includes importing torch and
    DeepSpeed; 0 where /proc is unavailable."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - started_after_boot)


class AttemptClock:
    """Started with the process; `record` appends the attempt to the run directory's run.json."""

    def __init__(self, read_commit: bool = True, launcher: str | None = None) -> None:
        already = seconds_since_process_start()
        # rank 0 alone watches what else the machine runs (launcher.machine_share)
        self.share = MachineShare(launcher) if launcher is not None and read_commit else None
        self.started = time.perf_counter() - already
        self.started_wall = datetime.fromtimestamp(time.time() - already, timezone.utc)
        # The code this process loaded, not what the checkout holds at the end; only rank 0 records.
        self.commit = source_commit() if read_commit else None

    def record(self, run_dir: Path, phase: str, completed: bool, context: DistributedContext, device: torch.device) -> None:
        if not context.is_main or not run_dir.is_dir():
            return
        path = run_dir / RECORD_NAME
        try:
            attempts = read_attempts(path)
        except RunRecordError as exc:  # keep the damaged file for a person to read; this attempt starts a new one
            kept = path.with_name(f"{RECORD_NAME}.unreadable")
            os.replace(path, kept)
            print(f"warning: {exc}; moved it to {kept.name} and started a new record", file=sys.stderr, flush=True)
            attempts = []
        others_cores, cpu_seconds = self.share.measure() if self.share else (None, None)
        attempts.append({
            "phase": phase,
            "started": self.started_wall.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - self.started, 2),
            "completed": completed,
            "world_size": context.world_size,
            "launcher": context.launcher,
            "device": describe_device(context, device),
            "host": socket.gethostname(),
            "commit": self.commit,
            "torch": torch.__version__,
            "others_cores": others_cores,
            "cpu_seconds": cpu_seconds,
        })
        write_text_atomically(path, json.dumps({"attempts": attempts}, indent=1) + "\n")


class RunRecordError(DataError):
    """A run.json that exists but cannot be read as a record of attempts."""


def read_attempts(path: Path) -> list[dict]:
    """The attempts recorded so far ([] when there is no record yet).

    A record that exists but is damaged is an error naming the file and what is wrong: dropping it
    silently would lose the wall time of every earlier attempt and mark a finished run unfinished.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise RunRecordError(str(path), f"unreadable run record ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        attempts = json.loads(text)["attempts"]
    except json.JSONDecodeError as exc:
        raise RunRecordError(str(path), f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (KeyError, TypeError):
        raise RunRecordError(str(path), 'not a run record (no "attempts" list)') from None
    if not isinstance(attempts, list) or not all(isinstance(a, dict) for a in attempts):
        raise RunRecordError(str(path), 'not a run record ("attempts" must be a list of objects)')
    return attempts
