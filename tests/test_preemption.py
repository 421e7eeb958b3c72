"""A stop signal to any one rank stops every rank after the same step, with a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil

from conftest import CONFIGS, pretrain_overrides
from launch import ROOT, TRAIN, losses, worker_env
from launcher.distributed import free_port


def test_sigterm_to_one_rank_stops_both_at_the_same_step(world, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               TRAIN, "--config", str(CONFIGS / "pretrain.yaml"), "--set",
               *pretrain_overrides(world, run, "train.max_steps=100000", "train.log_every=1")]
    agent = subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not ((run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 3):
            assert time.time() < deadline and agent.poll() is None, agent.communicate()[1][-3000:]
            time.sleep(0.5)
        workers = sorted(psutil.Process(agent.pid).children(), key=lambda p: p.environ().get("RANK", ""))
        rank1 = next(p for p in workers if p.environ().get("RANK") == "1")
        rank1.send_signal(signal.SIGTERM)  # rank 0 gets nothing
        stdout, stderr = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, stderr[-3000:]  # both workers exited cleanly
    stopped = int(stdout.split("checkpoint step")[1][:8])
    assert (run / "checkpoints" / "latest").read_text() == f"step{stopped:08d}"
    assert max(losses(run)) == stopped and not (run / "export").exists()  # unfinished: no export
    marker = json.loads((run / "checkpoints" / f"step{stopped:08d}" / "complete.json").read_text())
    assert marker["world_size"] == 2 and marker["step"] == stopped


def test_sigterm_to_the_whole_process_group_with_worker_processes_saves_and_exits_cleanly(world, tmp_path):
    """scancel signals every process of a step, and the GPU runbook's time box its process group: the
    data.workers processes get SIGTERM too. They leave it to the trainer, which saves and ends them."""
    run = tmp_path / "run"
    command = [sys.executable, TRAIN, "--config", str(CONFIGS / "pretrain.yaml"), "--set",
               *pretrain_overrides(world, run, "train.max_steps=100000", "train.log_every=1", "data.workers=1")]
    trainer = subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not ((run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 3):
            assert time.time() < deadline and trainer.poll() is None, trainer.communicate()[1][-3000:]
            time.sleep(0.5)
        assert len(psutil.Process(trainer.pid).children(recursive=True)) >= 1  # the worker process
        os.killpg(trainer.pid, signal.SIGTERM)
        stdout, stderr = trainer.communicate(timeout=120)
    finally:
        if trainer.poll() is None:
            os.killpg(trainer.pid, signal.SIGKILL)
    assert trainer.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "killed by signal" not in stderr
    stopped = int(stdout.split("checkpoint step")[1][:8])
    assert (run / "checkpoints" / "latest").read_text() == f"step{stopped:08d}"
