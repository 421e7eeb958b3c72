"""slurm.node, what srun starts on each node: torchrun's exit status passes through, the node's output
goes to its own log too, and a launcher that outlives its failed trainers is stopped after the grace.

The launcher here is a stand-in with torchrun's shape (a parent that starts trainers and waits): the
stuck agent itself needs a cut link and is tested on the namespaced cluster
(tests/test_cluster_network.py); these check the watcher's rules one by one, in seconds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

# A launcher: starts one trainer (which writes a failure note when told to fail, as launcher/train.py does),
# waits for it, then lingers LINGER seconds before exiting with the trainer's status.
LAUNCHER = """
import os, subprocess, sys, time
fail, linger = sys.argv[1] == "fail", float(sys.argv[2])
trainer = subprocess.run([sys.executable, "-c", '''
import os, sys
print("trainer says hello", flush=True)
if sys.argv[1] == "fail":
    print("error: rank 3: lost its peer at 10.0.0.2:1234 (Connection closed by peer)", file=sys.stderr, flush=True)
    open(os.path.join(os.environ["SPANGPT_FAILURE_NOTES"], "rank-3"), "w").write("1")
    sys.exit(1)
''', sys.argv[1]])
time.sleep(linger)
sys.exit(trainer.returncode)
"""


def watch(tmp_path: Path, outcome: str, linger: float, grace: float) -> tuple[subprocess.CompletedProcess, float, str]:
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "slurm.node", "--log", str(tmp_path / "job-%n.log"), "--grace",
                             str(grace), "--", sys.executable, str(launcher), outcome, str(linger)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    (log,) = tmp_path.glob("job-*.log")
    return result, time.monotonic() - began, log.read_text()


def test_a_launcher_that_outlives_its_failed_trainers_is_stopped_after_the_grace(tmp_path):
    result, took, log = watch(tmp_path, "fail", linger=300, grace=1)
    assert result.returncode == 1
    assert took < 10, took  # 1 s of grace and 0.5 s polls, not the launcher's 300 s
    stopped = "torchrun was still running 1 s after its trainers failed (waiting on the rendezvous store behind a lost link); stopped it"
    assert stopped in result.stdout
    for text in (result.stdout, log):  # the node's log holds what the job's log holds
        assert "trainer says hello" in text
        assert "error: rank 3: lost its peer at 10.0.0.2:1234" in text
        assert stopped in text


def test_a_launcher_that_exits_on_its_own_keeps_its_status(tmp_path):
    result, _, log = watch(tmp_path, "fail", linger=0, grace=30)
    assert result.returncode == 1 and "stopped it" not in result.stdout
    result, _, log = watch(tmp_path, "succeed", linger=0, grace=30)
    assert result.returncode == 0 and "trainer says hello" in log


def test_a_launcher_whose_trainers_succeeded_may_wait_longer_than_the_grace(tmp_path):
    """torchrun's exit barrier: a node that finished first waits for the others (300 s by default)."""
    result, took, _ = watch(tmp_path, "succeed", linger=3, grace=0.5)
    assert result.returncode == 0 and "stopped it" not in result.stdout
    assert took >= 3


def test_the_command_is_required_and_the_grace_positive(tmp_path):
    for args, message in ((["--log", "x.log"], "no command after --"),
                          (["--log", "x.log", "--grace", "0", "--", "true"], "--grace 0: must be positive")):
        result = subprocess.run([sys.executable, "-m", "slurm.node", *args], cwd=tmp_path, capture_output=True,
                                text=True, env={"PYTHONPATH": str(ROOT)})
        assert result.returncode == 2 and result.stderr.strip().endswith(message), result.stderr
