"""Whether a run had its machine to itself: the CPU time other processes took while it ran.

A wall time is only evidence of speed when nothing else ran beside it: on 2 cores, a second run or
the test suite halves a pretraining's tokens per second, and records made that way once passed for
the schedule's speed. Rank 0 reads the machine's busy CPU time (/proc/stat, steal time included: a
hypervisor's other guests take cores too) and the CPU time of its own job's processes (the process
tree under the launcher that started the ranks) at the start and end of an attempt; the rest,
divided by the wall time, is how many cores others used on average. run.json records it as
`others_cores`, and the report marks a run above SHARED_CORES as run on a shared machine; it also
records the job's own CPU time (`cpu_seconds`), the cost axis of the report's curves.
Linux only: elsewhere nothing is recorded and the report says nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PROC = Path("/proc")
# Other processes averaging more than a fifth of a core: on 2 cores, 10% of the machine.
SHARED_CORES = 0.2
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest time is inside user)


def machine_busy_seconds() -> float | None:
    """CPU-seconds all cores have been busy since boot, or None without /proc/stat."""
    try:
        fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
        return sum(int(fields[i]) for i in BUSY_FIELDS) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU-seconds of the process and its reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        table[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    return table


def tree_cpu_seconds(root: int) -> float:
    """CPU-seconds of `root` and every process below it."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += table.get(pid, (0, 0.0))[1]
        todo += children.get(pid, [])
    return total


def job_root(launcher: str) -> int:
    """The process whose tree is this job on this host: the launcher's agent (torchrun, deepspeed,
    SLURM's step) when one started the ranks, else this process alone."""
    return os.getppid() if launcher != "single" else os.getpid()


class MachineShare:
    """Started when an attempt starts; `measure()` at its end."""

    def __init__(self, launcher: str) -> None:
        self.root = job_root(launcher)
        self.started = time.perf_counter()
        self.busy = machine_busy_seconds()
        self.mine = tree_cpu_seconds(self.root) if self.busy is not None else 0.0
        # what this process spent before (importing torch): part of the run's cost, as it is of its wall time
        # (its own CPU time only: a long-lived process's reaped children belong to earlier work)
        self.before = time.process_time() if self.busy is not None else 0.0

    def measure(self) -> tuple[float | None, float | None]:
        """(others_cores, job_cpu_seconds) since the start, from one reading of the process tree:
        the cores other processes used on average, and this job's own CPU time (all ranks and
        threads on this host, the cost that neither sharing nor thread count hides); None where
        /proc cannot be read."""
        busy = machine_busy_seconds()
        elapsed = time.perf_counter() - self.started
        if busy is None or self.busy is None or elapsed <= 0:
            return None, None
        mine = tree_cpu_seconds(self.root) - self.mine
        others = (busy - self.busy) - mine
        return round(max(0.0, others) / elapsed, 3), round(mine + self.before, 2)
