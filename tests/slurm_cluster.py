"""The emulated SLURM cluster for the tests (slurm/local-cluster.sh), and what its tests share:
a user's copy of the checkout, job states, and the pipeline's submission."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

CLUSTER = ROOT / "slurm" / "local-cluster.sh"


def running_cluster(tmp_path_factory, net: str):
    """Start the cluster in `net` mode (loopback or netns) and yield the environment its commands need
    (SLURM_CONF, and in netns mode PATH with the wrappers into the controller's namespace); stop it after."""
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        pytest.skip("SLURM tests need Debian's slurm-wlm and munge (apt-get install slurm-wlm munge; .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("the emulated cluster runs munged and slurmd as root")
    state = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPANGPT_CLUSTER_DIR": str(state), "SPANGPT_CLUSTER_NET": net}
    subprocess.run(["bash", str(CLUSTER), "start"], env=env, check=True, timeout=120)
    lines = subprocess.run(["bash", str(CLUSTER), "env"], env=env, check=True, capture_output=True, text=True).stdout
    for name, value in re.findall(r"^export (\w+)=(.*)$", lines, re.M):
        env[name] = value.replace("$PATH", os.environ["PATH"])
    env["SPANGPT_PYTHON"] = sys.executable
    try:
        yield env
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=env, timeout=120)


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The working tree's files (tracked and new, not ignored), as a user's clone would have them."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def job_state(env: dict, job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_for(env: dict, job: str, states: set[str], timeout: float = 400) -> dict[str, str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = job_state(env, job)
        if info["JobState"] in states:
            return info
        time.sleep(2)
    raise AssertionError(f"job {job} still {info['JobState']} ({info.get('Reason')}) after {timeout} s")


def submit_pipeline(env: dict, checkout: Path, *overrides: str) -> dict[str, str]:
    result = subprocess.run(["bash", "slurm/pipeline.sh", "--demo", "--set", *overrides], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r"^(pretrain|finetune|evaluate) (\d+) ->", result.stdout, re.M))


