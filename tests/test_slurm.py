"""The SLURM scripts on a real (emulated) 2-node cluster: slurm/local-cluster.sh, as in CI.

Needs Debian's slurm-wlm and munge and root (CI installs them); elsewhere these tests skip and say
why. Jobs run in a copy of the working tree, so their runs/ and worlds/ never touch the checkout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from slurm.job import rendezvous_port
from slurm_cluster import checkout, job_state, running_cluster, submit_pipeline, wait_for  # noqa: F401 (fixture)

CPU_JOB = ["--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1", "--time=20"]
TINY = ["model.n_embd=32", "model.n_head=2", "train.log_every=1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The emulated cluster in its loopback mode: both nodes on 127.0.0.1 (tests/test_cluster_network.py
    runs the namespaced one)."""
    yield from running_cluster(tmp_path_factory, "loopback")


def test_pipeline_runs_three_chained_jobs_on_two_nodes(cluster, checkout):
    jobs = submit_pipeline(cluster, checkout, "train.max_steps=6", *TINY)
    assert job_state(cluster, jobs["finetune"])["Dependency"] == f"afterok:{jobs['pretrain']}(unfulfilled)"
    for phase in ("pretrain", "finetune", "evaluate"):
        info = wait_for(cluster, jobs[phase], {"COMPLETED", "FAILED", "CANCELLED"})
        assert info["JobState"] == "COMPLETED", (phase, info.get("Reason"))
        assert info["NumNodes"] == "2"
    runs = checkout / "runs" / "demo" / "vanilla"
    log = (runs / "pretrain" / "slurm" / f"spangpt-pretrain-{jobs['pretrain']}.out").read_text()
    assert "2 node(s) x 1 process(es)" in log and "world size 2 (launcher env)" in log  # 2 nodes x 1 task
    # n1 and n2 resolve nowhere: the rendezvous is on the head node's NodeAddr (slurm/job.py).
    assert f"rendezvous 127.0.0.1:{rendezvous_port(jobs['pretrain'])}" in log
    for phase in ("finetune", "evaluate"):
        predictions = (runs / phase / "predictions.txt").read_text(encoding="utf-8").splitlines()
        assert len(predictions) == 100
        accuracy = json.loads((runs / phase / "accuracy.json").read_text())
        assert accuracy["total"] == 100
        phase_log = (runs / phase / "slurm" / f"spangpt-{phase}-{jobs[phase]}.out").read_text()
        assert phase_log.count("Correct: ") == 1  # written and printed once, by rank 0
        assert not list((runs / phase).glob(".*tmp*"))
    evaluate_config = (runs / "evaluate" / "config.yaml").read_text()
    assert f"init_from: {runs.relative_to(checkout) / 'finetune' / 'export'}" in evaluate_config


def test_every_node_of_a_job_gets_the_same_rendezvous(cluster, checkout):
    """`python -m slurm.job rendezvous` on both nodes: the head's NodeAddr and the job's port."""
    probe = f'echo "$SLURM_NODEID $SLURM_JOB_ID $({sys.executable} -m slurm.job rendezvous)"'
    srun = ["srun", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--time=2"]
    result = subprocess.run([*srun, "bash", "-c", probe], cwd=checkout, env=cluster, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    job = lines[0].split()[1]
    assert lines == [f"{node} {job} 127.0.0.1:{rendezvous_port(job)}" for node in (0, 1)]


def test_failed_phase_cancels_the_phases_after_it(cluster, checkout):
    jobs = submit_pipeline(cluster, checkout, "train.micro_batch_size=7", *TINY)  # 32 not divisible by 2 x 7
    info = wait_for(cluster, jobs["pretrain"], {"COMPLETED", "FAILED", "CANCELLED"})
    assert info["JobState"] == "FAILED"
    for phase in ("finetune", "evaluate"):
        later = wait_for(cluster, jobs[phase], {"CANCELLED", "COMPLETED", "FAILED"}, timeout=120)
        assert later["JobState"] == "CANCELLED" and later["Reason"] == "DependencyNeverSatisfied", later
    log = (checkout / "runs/demo/vanilla/pretrain/slurm" / f"spangpt-pretrain-{jobs['pretrain']}.out").read_text()
    assert "error: train.global_batch_size: 32 is not divisible by world size x train.micro_batch_size (2 x 7)" in log
    assert not (checkout / "runs/demo/vanilla/finetune/export").exists()


def test_preempted_job_requeues_and_resumes_to_the_same_final_step(cluster, checkout):
    subprocess.run([sys.executable, "-m", "data.synthetic", "worlds/demo", "--train", "100", "--dev", "100",
                    "--test", "50", "--places", "20"], cwd=checkout, check=True, capture_output=True)
    steps = 150
    job = subprocess.run(["sbatch", "--parsable", *CPU_JOB, "slurm/pretrain.sh", "configs/demo/pretrain.yaml", "--set",
                          "run_dir=runs/preempt", f"train.max_steps={steps}", *TINY],
                         cwd=checkout, env=cluster, capture_output=True, text=True, check=True).stdout.strip()
    metrics = checkout / "runs" / "preempt" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 10):
        assert time.time() < deadline and job_state(cluster, job)["JobState"] in {"PENDING", "RUNNING"}
        time.sleep(1)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=cluster, check=True)  # SLURM's time-limit warning
    info = wait_for(cluster, job, {"PENDING", "COMPLETED", "FAILED"}, timeout=120)
    assert info["JobState"] == "PENDING" and info["Restarts"] == "1", info
    # SLURM holds a requeued job for about two minutes; release it sooner. Not in the second its credential was
    # revoked: slurmd refuses a credential issued in that same second ("Job credential revoked", seen in CI).
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=cluster, check=True)
    info = wait_for(cluster, job, {"COMPLETED", "FAILED", "CANCELLED"})
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1"
    log = (checkout / f"slurm-spangpt-pretrain-{job}.out").read_text()
    stopped = int(re.search(r"checkpoint step(\d+) saved", log).group(1))
    assert 10 <= stopped < steps
    assert f"steps {stopped} -> {steps} (resumed from step{stopped:08d})" in log
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged == list(range(1, steps + 1))  # the step count continues; nothing repeated or lost
    assert (checkout / "runs" / "preempt" / "checkpoints" / "latest").read_text() == f"step{steps:08d}"
    attempts = json.loads((checkout / "runs" / "preempt" / "run.json").read_text())["attempts"]
    assert [a["completed"] for a in attempts] == [False, True]  # the report sums both attempts' wall time


def test_scancel_makes_the_trainers_checkpoint_before_they_exit(cluster, checkout):
    subprocess.run([sys.executable, "-m", "data.synthetic", "worlds/demo", "--train", "100", "--dev", "100",
                    "--test", "50", "--places", "20"], cwd=checkout, check=True, capture_output=True)
    job = subprocess.run(["sbatch", "--parsable", *CPU_JOB, "slurm/pretrain.sh", "configs/demo/pretrain.yaml", "--set",
                          "run_dir=runs/cancelled", "train.max_steps=100000", *TINY],
                         cwd=checkout, env=cluster, capture_output=True, text=True, check=True).stdout.strip()
    metrics = checkout / "runs" / "cancelled" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 5):
        assert time.time() < deadline
        time.sleep(1)
    subprocess.run(["scancel", job], env=cluster, check=True)
    info = wait_for(cluster, job, {"CANCELLED", "COMPLETED", "FAILED"}, timeout=120)
    assert info["JobState"] == "CANCELLED" and info["Restarts"] == "0"  # cancelled, not requeued
    # The checkpoint is of the last step trained: nothing done before the cancel is lost.
    last_step = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert (checkout / "runs" / "cancelled" / "checkpoints" / "latest").read_text() == f"step{last_step:08d}"
