"""Leaving the process group lets go of every group DeepSpeed made, while the interpreter is whole.

A group that outlives launcher.distributed.stop is destroyed during interpreter teardown, where
gloo's destructor can abort a rank that finished all its work (CI saw SIGABRT at exit once).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from launch import ROOT, check, worker_env
from launcher.distributed import free_port


def ranks_reports(stdout: str) -> list[dict]:
    """Each rank's one-line JSON report; two ranks writing to one pipe can land on one line."""
    return [json.loads(text) for text in re.findall(r"\{[^{}]*\}", stdout)]


def test_stop_releases_deepspeeds_process_groups():
    result = check(subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(ROOT / "tests" / "shutdown_worker.py")],
        cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=300))
    reports = ranks_reports(result.stdout)
    assert sorted(report["rank"] for report in reports) == [0, 1]
    for report in reports:
        assert "_WORLD_GROUP" in report["before"]  # the engine made DeepSpeed clone the world group
        assert report["after"] == [], report


def test_deepspeeds_own_world_group_times_out_after_distributed_timeout_minutes():
    """DeepSpeed reduces gradients over a clone of the world group that torch would give its default
    timeout (30 minutes for gloo): behind a network partition a rank waited that long, not
    distributed.timeout_minutes. The clone is made with the run's timeout (3 s here)."""
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                             str(free_port()), str(ROOT / "tests" / "timeout_worker.py")],
                            cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=90)
    [line] = ranks_reports(result.stdout)
    assert line["outcome"] != "completed" and "Timed out" in line["outcome"], line
    assert line["waited"] < 9, line
