"""launcher.machine_share: the cores other processes take while a run runs, and the run's own CPU time.

A busy process outside the job (double-forked, so it is nobody's child) shows up as about one core
of others; the CPU time of a busy child of the job is the job's own, not others'."""

from __future__ import annotations

import subprocess
import sys
import time

from launcher.machine_share import MachineShare, machine_busy_seconds

BUSY_WALL = "import time\nt = time.time()\nwhile time.time() - t < {seconds}: pass"
BUSY_CPU = "import time\nwhile time.process_time() < {seconds}: pass"  # a fixed amount of work, however loaded the machine


def test_a_busy_process_outside_the_job_is_counted_as_others():
    # work this process's children did before the run started is not the run's (pytest has done plenty)
    subprocess.run([sys.executable, "-c", BUSY_CPU.format(seconds=1)], check=True)
    subprocess.run(["bash", "-c", f"({sys.executable} -c '{BUSY_WALL.format(seconds=3)}' &)"], check=True)
    share = MachineShare("single")
    time.sleep(2)
    assert share.measure()[0] > 0.6
    assert share.measure()[1] < time.process_time() + 0.5  # this process's own time (imports), no more


def test_a_busy_child_of_the_job_is_its_own_cpu_time_not_others():
    share = MachineShare("single")
    busy, started = machine_busy_seconds(), time.perf_counter()
    subprocess.run([sys.executable, "-c", BUSY_CPU.format(seconds=1.5)], check=True)
    elapsed = time.perf_counter() - started
    machine_cores = (machine_busy_seconds() - busy) / elapsed
    mine = share.measure()[1]
    assert mine > time.process_time() + 1.4  # the child's 1.5 s are the job's
    # the child's cores are not counted as someone else's, however busy the rest of the machine is
    assert share.measure()[0] < machine_cores - 0.5 * 1.5 / elapsed
