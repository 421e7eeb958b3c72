"""Faults with real processes: kill -9 mid-save, a rank killed mid-training, torchrun restarts, a full disk.

Nothing hangs (the job ends within the configured collective timeout), nothing is lost beyond one
checkpoint interval, and a full disk leaves the previous outputs as they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import CONFIGS, pretrain_overrides
from launch import ROOT, TRAIN, check, launch, losses, metrics, worker_env
from launcher.checkpoint import find_latest
from launcher.distributed import free_port
from test_launcher_errors import one_error_line

PRETRAIN = str(CONFIGS / "pretrain.yaml")


def start(command_args: list[str], nproc: int, max_restarts: int = 0) -> subprocess.Popen:
    if nproc == 1:
        command = [sys.executable, TRAIN, *command_args]
    else:
        # c10d rendezvous (as slurm/ launches): each restart round gets a fresh rendezvous and store
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--rdzv_backend",
                   "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", str(max_restarts),
                   TRAIN, *command_args]
    return subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def logged_steps(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def wait_for(condition, process: subprocess.Popen, timeout: float = 240, interval: float = 0.2) -> None:
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"process ended early ({process.returncode}): {process.stderr.read()[-3000:]}")
        assert time.time() < deadline, "timed out"
        time.sleep(interval)


def worker(agent: subprocess.Popen, rank: int) -> psutil.Process:
    return next(p for p in psutil.Process(agent.pid).children(recursive=True) if p.environ().get("RANK") == str(rank))


def test_kill_during_a_checkpoint_save_resumes_from_the_last_complete_one(world, tmp_path):
    run = tmp_path / "run"
    # SPEC-sized model (a 40 MB checkpoint: a save takes long enough to be caught in the middle)
    overrides = pretrain_overrides(world, run, "train.max_steps=100000", "train.checkpoint_every=2", "model.n_layer=4",
                                   "model.n_embd=256", "model.n_head=8", "train.global_batch_size=2", "train.micro_batch_size=2")
    process = start(["--config", PRETRAIN, "--set", *overrides], nproc=1)
    killed_in: Path | None = None
    try:
        deadline = time.time() + 240
        while killed_in is None:
            assert time.time() < deadline and process.poll() is None, "no save was caught in progress"
            for tag in sorted((run / "checkpoints").glob("step*")) if (run / "checkpoints").exists() else []:
                saving = any(tag.iterdir()) and not (tag / "complete.json").exists()
                if saving and tag.name != "step00000002":  # a complete checkpoint exists before it
                    os.killpg(process.pid, signal.SIGKILL)
                    killed_in = tag
                    break
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (killed_in / "complete.json").exists()  # the kill did land mid-save
    latest = find_latest(run / "checkpoints")
    assert latest is not None and latest.tag < killed_in.name and (latest.path / "complete.json").is_file()
    assert (run / "checkpoints" / "latest").read_text() == latest.tag  # the pointer never named the torn one
    resumed = check(launch([PRETRAIN], pretrain_overrides(world, run, f"train.max_steps={latest.step + 2}",
                    "model.n_layer=4", "model.n_embd=256", "model.n_head=8", "train.global_batch_size=2",
                    "train.micro_batch_size=2"), launcher="python"))
    assert f"(resumed from {latest.tag})" in resumed.stdout


def test_a_rank_killed_mid_training_ends_the_job_and_a_rerun_loses_at_most_one_interval(world, tmp_path):
    run = tmp_path / "run"
    every = 3
    overrides = pretrain_overrides(world, run, "train.max_steps=100000", f"train.checkpoint_every={every}",
                                   "distributed.timeout_minutes=0.5", "model.n_embd=128", "model.n_layer=4")
    agent = start(["--config", PRETRAIN, "--set", *overrides], nproc=2)
    try:
        wait_for(lambda: logged_steps(run) >= 2 * every + 1, agent)
        processes = [psutil.Process(agent.pid), *psutil.Process(agent.pid).children(recursive=True)]
        worker(agent, 1).kill()  # SIGKILL, no chance to clean up
        killed_at = time.time()
        agent.wait(timeout=180)
        ended_after = time.time() - killed_at
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
    assert agent.returncode != 0
    assert ended_after < 90, ended_after  # bounded: torchrun stops the survivor, or its collective times out
    time.sleep(1)
    assert not [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]  # nothing left
    last_trained = max(losses(run))
    latest = find_latest(run / "checkpoints")
    assert last_trained - latest.step <= every  # lost work: at most one checkpoint interval
    rerun = check(launch([PRETRAIN], pretrain_overrides(world, run, f"train.max_steps={last_trained + 2}",
                  f"train.checkpoint_every={every}", "model.n_embd=128", "model.n_layer=4"), nproc=2))
    assert f"(resumed from {latest.tag})" in rerun.stdout
    assert max(losses(run)) == last_trained + 2


def test_torchrun_restarts_a_killed_worker_which_resumes_by_itself(world, tmp_path):
    run = tmp_path / "run"
    total = 40
    overrides = pretrain_overrides(world, run, f"train.max_steps={total}", "train.checkpoint_every=4",
                                   "distributed.timeout_minutes=0.5", "model.n_embd=128", "model.n_layer=4")
    agent = start(["--config", PRETRAIN, "--set", *overrides], nproc=2, max_restarts=1)
    try:
        wait_for(lambda: logged_steps(run) >= 9, agent, interval=0.05)
        worker(agent, 0).kill()
        stdout, stderr = agent.communicate(timeout=300)
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
    assert agent.returncode == 0, [line for line in stderr.splitlines() if "error" in line.lower()][:20]
    assert "(resumed from step000000" in stdout
    assert max(losses(run)) == total and (run / "export" / "model.safetensors").is_file()
    steps = [m["step"] for m in metrics(run)]
    assert sorted(set(steps)) == list(range(1, total + 1))  # every step trained; a few after the checkpoint twice


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (needs root to mount); unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 4096) -> Path:
    """Take all free space but `leave` bytes (one page)."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def test_a_full_disk_while_writing_predictions_keeps_the_previous_ones(world, finetuned, small_disk, tmp_path):
    questions = tmp_path / "many.tsv"  # enough lines that predictions need more than one page
    questions.write_text((world / "birth_dev.tsv").read_text(encoding="utf-8") * 400, encoding="utf-8")
    run = small_disk / "eval"
    overrides = [f"run_dir={run}", f"init_from={finetuned / 'export'}", f"eval.questions={questions}",
                 "model.n_layer=2", "model.n_embd=32", "model.n_head=2", "data.block_size=64"]
    check(launch([str(CONFIGS / "evaluate.yaml")], overrides, launcher="python"))
    before = {name: (run / name).read_bytes() for name in ("predictions.txt", "accuracy.json")}
    assert len(before["predictions.txt"]) > 4096
    filler = fill(small_disk)
    result = launch([str(CONFIGS / "evaluate.yaml")], overrides, launcher="python")
    one_error_line(result, str(run / "predictions.txt"), "No space left on device", "previous file is unchanged")
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not list(run.glob(".*tmp*"))  # no partial file left behind
    filler.unlink()


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(world, small_disk):
    run = small_disk / "run"
    check(launch([PRETRAIN], pretrain_overrides(world, run, "train.max_steps=2", "train.checkpoint_every=1"), launcher="python"))
    filler = fill(small_disk)
    result = launch([PRETRAIN], pretrain_overrides(world, run, "train.max_steps=4", "train.checkpoint_every=1"), launcher="python")
    one_error_line(result, str(run / "checkpoints" / "step00000003"), "cannot write this checkpoint",
                   "step00000002 is intact")
    assert (run / "checkpoints" / "latest").read_text() == "step00000002"
    assert not (run / "checkpoints" / "step00000003").exists()  # the torn save is gone
    filler.unlink()
    resumed = check(launch([PRETRAIN], pretrain_overrides(world, run, "train.max_steps=4", "train.checkpoint_every=1"),
                           launcher="python"))
    assert "(resumed from step00000002)" in resumed.stdout
