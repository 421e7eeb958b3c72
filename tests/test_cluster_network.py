"""Several hosts for real: the emulated cluster with each node in a network namespace of its own
(slurm/local-cluster.sh, netns mode), joined by veth pairs to a bridge, so a collective crosses an
interface and names resolve through per-namespace hosts files, not to 127.0.0.1.

Needs root, `ip netns`, Debian's slurm-wlm and munge (CI has them); elsewhere the tests skip with
the reason. The machine's own network namespace gets no address and no listener.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import time

import pytest

from launch import ROOT, check, launch, losses
from launcher.network import choose_interface, loopback_rendezvous
from slurm.job import rendezvous_port
from slurm_cluster import checkout, job_state, running_cluster, submit_pipeline, wait_for  # noqa: F401 (fixture)

TINY = ["model.n_embd=32", "model.n_head=2", "train.log_every=1"]
CPU_JOB = ["--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=0", "--cpus-per-task=1", "--time=20"]
HEAD = "10.213.0.11"  # n1 (slurm/local-cluster.sh)


def netns_available() -> str | None:
    probe = "spangpt-netns-probe"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"no network namespaces here ({result.stderr.strip() or 'ip netns add failed'})"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


@pytest.fixture(scope="module")
def netns_cluster(tmp_path_factory):
    reason = netns_available()
    if reason is not None:
        pytest.skip(f"the namespaced cluster needs root and ip netns: {reason}")
    yield from running_cluster(tmp_path_factory, "netns")


def host_addresses() -> set[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines()}


def test_the_nodes_have_their_own_names_addresses_and_hosts_files_and_the_host_gets_none(netns_cluster, checkout):
    probe = 'echo "$SLURM_NODEID $(hostname) $(getent hosts $(hostname) | cut -d" " -f1) $(getent hosts n1 | cut -d" " -f1)"'
    result = subprocess.run(["srun", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--time=2", "bash", "-c", probe],
                            cwd=checkout, env=netns_cluster, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"0 n1 {HEAD} {HEAD}", f"1 n2 10.213.0.12 {HEAD}"]
    assert not host_addresses() & {"10.213.0.1", HEAD, "10.213.0.12"}  # nothing in the machine's own namespace
    with socket.socket() as client:  # slurmctld's port answers only inside the cluster
        assert client.connect_ex(("127.0.0.1", 16817)) != 0


def test_the_pipeline_crosses_the_bridge_with_the_one_host_losses(netns_cluster, checkout, tmp_path):
    jobs = submit_pipeline(netns_cluster, checkout, "train.max_steps=6", *TINY)
    for phase in ("pretrain", "finetune", "evaluate"):
        info = wait_for(netns_cluster, jobs[phase], {"COMPLETED", "FAILED", "CANCELLED"})
        assert info["JobState"] == "COMPLETED", (phase, info.get("Reason"))
    runs = checkout / "runs" / "demo" / "vanilla"
    log = (runs / "pretrain" / "slurm" / f"spangpt-pretrain-{jobs['pretrain']}.out").read_text()
    assert f"rendezvous {HEAD}:{rendezvous_port(jobs['pretrain'])}" in log  # the head's own address, not loopback
    assert f"network interface eth0 ({HEAD}), the route to the rendezvous n1 ({HEAD})" in log  # rank 0, on n1
    assert "world size 2 (launcher env)" in log
    assert json.loads((runs / "evaluate" / "accuracy.json").read_text())["total"] == 100

    one_host = tmp_path / "one-host"  # the same run on this host's loopback, 2 ranks
    check(launch([str(checkout / "configs" / "demo" / "pretrain.yaml")],
                 [f"run_dir={one_host}", f"data.corpus={checkout / 'worlds' / 'demo' / 'wiki.txt'}", "train.max_steps=6", *TINY],
                 nproc=2))
    crossed, local = losses(runs / "pretrain"), losses(one_host)
    assert sorted(crossed) == sorted(local) == list(range(1, 7))
    for step, loss in local.items():
        assert math.isclose(crossed[step], loss, rel_tol=1e-6), step


def test_an_interface_the_user_set_stands_and_otherwise_the_route_decides():
    environ = {"GLOO_SOCKET_IFNAME": "ib0"}
    assert choose_interface("10.0.0.1", environ) == "network interface as set: GLOO_SOCKET_IFNAME=ib0"
    assert environ == {"GLOO_SOCKET_IFNAME": "ib0"}
    environ = {}
    assert choose_interface("127.0.0.1", environ).startswith("network interface lo (127.0.0.1)")
    assert environ == {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}


def test_a_rendezvous_on_loopback_is_refused_when_the_nodes_are_not_all_this_host():
    """Debian's hosts file maps a host's own name to 127.0.1.1: the head node would rendezvous on itself."""
    problem = loopback_rendezvous("n1", "127.0.1.1", 2, {"n1": "n1.cluster", "n2": "n2.cluster"})
    assert problem.startswith("the rendezvous host n1 resolves to 127.0.1.1, a loopback address, but the job spans 2 nodes")
    assert loopback_rendezvous("n1", "127.0.0.1", 2, {"n1": "127.0.0.1", "n2": "127.0.0.1"}) is None  # one host
    assert loopback_rendezvous("n1", "127.0.0.1", 1, None) is None
    assert loopback_rendezvous("n1", HEAD, 2, {"n1": HEAD, "n2": "10.213.0.12"}) is None


def test_a_collective_that_lost_its_peers_is_one_line_naming_the_timeout_or_the_peer():
    """gloo's own words behind a cut link and after a lost node (seen on the namespaced cluster), made
    the one line every rank prints; anything else stays the error it is."""
    from launcher.distributed import collective_failure

    timed_out = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] "
                             "Timed out waiting 15000ms for recv operation to complete")
    assert collective_failure(timed_out, 0.25) == ("a collective did not complete within distributed.timeout_minutes "
                                                   "(0.25): Timed out waiting 15000ms for recv operation to complete")
    closed = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.213.0.12]:40123")
    assert collective_failure(closed, 0.25) == \
        "lost its peer at 10.213.0.12:40123 (Connection closed by peer [10.213.0.12]:40123)"
    assert collective_failure(RuntimeError("shape mismatch"), 0.25) is None


def test_a_node_that_cannot_reach_the_head_at_start_fails_the_job_within_its_timeout(netns_cluster, checkout):
    """n2 reaches the controller but not n1 (a blackhole route in n2's namespace): its torchrun cannot
    join the rendezvous. The scripts bound that wait by distributed.timeout_minutes (15 s here;
    torch's own store timeout is 60 s), and the job fails instead of waiting."""
    subprocess.run([sys.executable, "-m", "data.synthetic", "worlds/demo", "--train", "100", "--dev", "100",
                    "--test", "50", "--places", "20"], cwd=checkout, check=True, capture_output=True)
    n2 = subprocess.run(["bash", str(ROOT / "slurm" / "local-cluster.sh"), "netns", "n2"], env=netns_cluster,
                        capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["ip", "-n", n2, "route", "add", "blackhole", f"{HEAD}/32"], check=True)
    try:
        began = time.monotonic()
        job = subprocess.run(["sbatch", "--parsable", *CPU_JOB, "slurm/pretrain.sh", "configs/demo/pretrain.yaml", "--set",
                              "run_dir=runs/unreachable", "train.max_steps=30", "distributed.timeout_minutes=0.25", *TINY],
                             cwd=checkout, env=netns_cluster, capture_output=True, text=True, check=True).stdout.strip()
        info = wait_for(netns_cluster, job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=120)
        took = time.monotonic() - began
    finally:
        subprocess.run(["ip", "-n", n2, "route", "del", "blackhole", f"{HEAD}/32"], check=True)
    assert info["JobState"] == "FAILED"
    assert took < 50, took  # 15 s of rendezvous, start-up and polling; torch's defaults take 60 s and more
    log = (checkout / f"slurm-spangpt-pretrain-{job}.out").read_text()
    assert f"failed to connect/validate to host {HEAD}:{rendezvous_port(job)}" in log
    assert not (checkout / "runs" / "unreachable" / "checkpoints").exists()



def test_the_sweep_runs_its_grid_on_2_nodes_across_the_bridge_and_the_report_reads_it(netns_cluster, checkout):
    """slurm/sweep.sh with every job on 2 nodes x 1 process: each run's collectives cross the bridge."""
    subprocess.run([sys.executable, "-m", "data.synthetic", "worlds/tiny", "--train", "12", "--dev", "8",
                    "--test", "0", "--places", "10"], cwd=checkout, check=True, capture_output=True)
    args = ["slurm/sweep.sh", "configs/demo", "--data", "worlds/tiny", "--out", "runs/grid", "--variants", "vanilla",
            "perceiver", "--seeds", "0", "--label", "grid on SLURM", "--set", "train.max_steps=4", *TINY]
    env = {**netns_cluster, "SBATCH_ARGS": "--nodes=2 --ntasks-per-node=1 --gpus-per-node=0 --cpus-per-task=1 --time=20"}
    result = subprocess.run(["bash", *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    jobs = {(cell, phase): job for cell, phase, job in re.findall(r"^(\S+) (\w+): job (\d+) ->", result.stdout, re.M)}
    assert sorted(jobs) == sorted((cell, phase) for cell in ("vanilla-s0", "perceiver-s0")
                                  for phase in ("pretrain", "finetune", "finetune_scratch"))
    for cell in ("vanilla-s0", "perceiver-s0"):
        assert job_state(netns_cluster, jobs[(cell, "finetune")])["Dependency"] == f"afterok:{jobs[(cell, 'pretrain')]}(unfulfilled)"
    for (cell, phase), job in jobs.items():
        info = wait_for(netns_cluster, job, {"COMPLETED", "FAILED", "CANCELLED"})
        assert info["JobState"] == "COMPLETED", (cell, phase, info.get("Reason"))
        assert info["JobName"] == f"spangpt-{cell}-{phase}"
    for variant in ("vanilla", "perceiver"):
        finetune = checkout / "runs" / "grid" / variant / "seed0" / "finetune"
        assert json.loads((finetune / "accuracy.json").read_text())["total"] == 8
        (log,) = (finetune / "slurm").glob(f"spangpt-{variant}-s0-finetune-*.out")
        assert "2 node(s) x 1 process(es)" in log.read_text() and "world size 2 (launcher env)" in log.read_text()
    report = subprocess.run([sys.executable, "-m", "experiments.report", "runs/grid", "--out", "docs/results.md"],
                            cwd=checkout, env=netns_cluster, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    markdown = (checkout / "docs" / "results.md").read_text()
    assert "## grid on SLURM" in markdown and "`bash slurm/sweep.sh configs/demo --data worlds/tiny" in markdown
    assert (checkout / "docs" / "figures" / "grid-pretrain.png").is_file()
    again = subprocess.run(["bash", *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("completed earlier") == 6
    assert "submitted 0 job(s)" in again.stdout


# A fault mid-training: pretraining long enough to cut into, checkpoints every FAULT_CHECKPOINT steps, and
# collectives that give up after 15 s (distributed.timeout_minutes=0.25).
FAULT_STEPS, FAULT_CHECKPOINT, FAULT_TIMEOUT_S = 200, 20, 15
FAULT_RUN = [f"train.max_steps={FAULT_STEPS}", f"train.checkpoint_every={FAULT_CHECKPOINT}",
             f"distributed.timeout_minutes={FAULT_TIMEOUT_S / 60:g}", *TINY]
SPANGPT_PROCESS = ("launcher/train.py", "torch.distributed.run", "slurm.node")


@pytest.fixture(scope="module")
def uninterrupted_losses(tmp_path_factory) -> dict[int, float]:
    """The fault runs' losses without a fault: the same config at world size 2 on this host's loopback."""
    here = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run([sys.executable, "-m", "data.synthetic", str(here / "world"), "--train", "100", "--dev", "100",
                    "--test", "50", "--places", "20"], cwd=ROOT, check=True, capture_output=True)
    check(launch([str(ROOT / "configs" / "demo" / "pretrain.yaml")],
                 [f"run_dir={here / 'run'}", f"data.corpus={here / 'world' / 'wiki.txt'}", *FAULT_RUN], nproc=2))
    return losses(here / "run")


def cluster_command(env: dict, *args: str) -> str:
    return subprocess.run(["bash", str(ROOT / "slurm" / "local-cluster.sh"), *args], env=env, capture_output=True,
                          text=True, check=True, timeout=120).stdout.strip()


def node_state(env: dict, node: str) -> str:
    """The node's State in `scontrol show node` (IDLE, DOWN+NOT_RESPONDING, ...)."""
    out = subprocess.run(["scontrol", "show", "node", node], env=env, capture_output=True, text=True, check=True).stdout
    return re.search(r"\bState=(\S+)", out).group(1)


def processes(namespace: str) -> list[str]:
    """The command lines of the processes in a node's namespace (zombies have none)."""
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
    found = []
    for pid in pids:
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if command:
            found.append(command)
    return found


def spangpt_processes(namespace: str) -> list[str]:
    """spangpt's processes in a node's namespace: trainers, torchrun, slurm.node."""
    return [command for command in processes(namespace) if any(name in command for name in SPANGPT_PROCESS)]


def settle(env: dict, namespaces: dict[str, str], quiet: float = 12, timeout: float = 180) -> None:
    """Wait until nothing left of the failed attempt can reach the requeued one. A requeued job keeps its id and
    step ids, and slurmd (22.05) finds a job's steps by those alone, never by start time, so before it starts again:
    slurmctld has no RPC queued or in flight (sdiag's agent queue and count 0): the requeue's REQUEST_TERMINATE_JOB
    to the DOWN node keeps connecting for ~10 s and lands once the node answers, and srun's SIGKILL of the step
    (--kill-on-bad-exit), undelivered before the node went DOWN, is replayed 60 s later; and no slurmstepd on
    either node for `quiet` s: a slurmd terminate thread for the job looks for its steps every 10 s and kills those
    it finds, a new attempt's included, KillWait (30 s) after the terminate came."""
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while True:
        now = time.monotonic()
        if any("slurmstepd" in command for namespace in namespaces.values() for command in processes(namespace)):
            quiet_since = now
        elif now - quiet_since >= quiet:
            stats = cluster_command(env, "exec", "sdiag")
            if re.search(r"^Agent queue size:\s*0$", stats, re.M) and re.search(r"^Agent count:\s*0$", stats, re.M):
                return
        assert now < deadline, (processes(namespaces["n2"]), cluster_command(env, "exec", "sdiag"))
        time.sleep(0.5)


def fault_mid_training(env: dict, checkout, run: str, fault, restore) -> dict:
    """Submit a 2-node pretraining job, apply `fault` once it has trained 30 steps, measure how long spangpt's
    processes on both nodes take to exit, wait for SLURM to requeue the job, `restore`, and let it finish.
    Returns the times (s after the fault), the last step trained before it and the job's final state."""
    subprocess.run([sys.executable, "-m", "data.synthetic", "worlds/demo", "--train", "100", "--dev", "100",
                    "--test", "50", "--places", "20"], cwd=checkout, check=True, capture_output=True)
    job = subprocess.run(["sbatch", "--parsable", *CPU_JOB, "slurm/pretrain.sh", "configs/demo/pretrain.yaml", "--set",
                          f"run_dir=runs/{run}", *FAULT_RUN], cwd=checkout, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    metrics = checkout / "runs" / run / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 30):
        assert time.time() < deadline and job_state(env, job)["JobState"] in {"PENDING", "RUNNING"}, job_state(env, job)
        time.sleep(0.2)
    namespaces = {node: cluster_command(env, "netns", node) for node in ("n1", "n2")}
    began = time.monotonic()
    fault()
    gone: dict[str, float] = {}
    while len(gone) < 2 and time.monotonic() - began < 120:
        for node, namespace in namespaces.items():
            if node not in gone and not spangpt_processes(namespace):
                gone[node] = time.monotonic() - began
        time.sleep(0.2)
    trained = max(json.loads(line)["step"] for line in metrics.read_text().splitlines())
    info = wait_for(env, job, {"PENDING", "COMPLETED", "FAILED", "CANCELLED"}, timeout=240)
    requeued = time.monotonic() - began
    restore()
    settle(env, namespaces)  # also past the second the old credential was revoked (see test_slurm's preemption test)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)
    final = wait_for(env, job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=300)
    return {"job": job, "gone": gone, "requeued": requeued, "requeue_state": info, "trained": trained,
            "final": final, "recovered": time.monotonic() - began, "metrics": metrics}


def assert_resumed_like_the_uninterrupted_run(result: dict, checkout, run: str, uninterrupted: dict[int, float]) -> None:
    assert result["requeue_state"]["JobState"] == "PENDING" and result["requeue_state"]["Restarts"] == "1", result
    assert result["final"]["JobState"] == "COMPLETED" and result["final"]["Restarts"] == "1", result["final"]
    log = (checkout / f"slurm-spangpt-pretrain-{result['job']}.out").read_text()
    resumed = int(re.search(rf"steps (\d+) -> {FAULT_STEPS} \(resumed from step\d+\)", log).group(1))
    assert resumed % FAULT_CHECKPOINT == 0 and 0 <= result["trained"] - resumed <= FAULT_CHECKPOINT, (resumed, result)
    run_dir = checkout / "runs" / run
    assert (run_dir / "checkpoints" / "latest").read_text() == f"step{FAULT_STEPS:08d}"
    steps = [json.loads(line)["step"] for line in result["metrics"].read_text().splitlines()]
    assert steps == list(range(1, FAULT_STEPS + 1))  # the steps trained twice are logged once
    final = losses(run_dir)
    for step, loss in uninterrupted.items():
        assert math.isclose(final[step], loss, rel_tol=1e-6), step


def test_a_partition_stops_both_sides_within_the_timeout_and_the_job_resumes(netns_cluster, checkout, uninterrupted_losses):
    """n2's link to the bridge goes down mid-training. Both sides' trainers give up after
    distributed.timeout_minutes, each with its line; torchrun on n2, stuck asking the store behind
    the cut, is stopped by slurm.node; SLURM marks n2 DOWN after SlurmdTimeout (30 s here) and
    requeues the job. The link comes back, an admin resumes n2 (SLURM does not ping a DOWN node),
    and the job resumes from its last checkpoint to the uninterrupted run's losses."""
    bridge, n2 = cluster_command(netns_cluster, "netns", "br"), cluster_command(netns_cluster, "netns", "n2")
    link = lambda state: subprocess.run(["ip", "-n", bridge, "link", "set", "p-n2", state], check=True)  # noqa: E731

    def reconnect() -> None:
        """As an admin would: the link back, n2's old job step gone (its slurmstepd reports to the controller
        once it can; a step started before that would be killed with it), then n2 resumed."""
        link("up")
        deadline = time.monotonic() + 120
        while any("slurmstepd" in command for command in processes(n2)):
            assert time.monotonic() < deadline, processes(n2)
            time.sleep(0.5)
        # Resumed if still DOWN: its old step's completion message can bring it back by itself (seen in CI),
        # and RESUME on a node that is not DOWN is an error ("Invalid node state specified").
        if "DOWN" in node_state(netns_cluster, "n2"):
            subprocess.run(["scontrol", "update", "NodeName=n2", "State=RESUME"], env=netns_cluster, check=True)

    try:
        result = fault_mid_training(netns_cluster, checkout, "partition", lambda: link("down"), reconnect)
    finally:
        link("up")
    print(f"partition: spangpt's processes gone after {result['gone']} s, requeued after {result['requeued']:.0f} s, "
          f"completed {result['recovered']:.0f} s after the cut")
    assert set(result["gone"]) == {"n1", "n2"}, result["gone"]
    assert max(result["gone"].values()) < FAULT_TIMEOUT_S + 15, result["gone"]  # the timeout, the watcher's grace
    assert min(result["gone"].values()) >= FAULT_TIMEOUT_S - 1, result["gone"]  # they waited for the timeout
    job = result["job"]
    waited = f"a collective did not complete within distributed.timeout_minutes ({FAULT_TIMEOUT_S / 60:g})"
    job_log = (checkout / f"slurm-spangpt-pretrain-{job}.out").read_text()
    assert job_log.count(f"error: rank 0: {waited}") == 1
    n2_log = (checkout / "runs" / "partition" / "slurm" / f"spangpt-pretrain-{job}-n2.log").read_text()
    assert n2_log.count(f"error: rank 1: {waited}") == 1  # kept on n2 while it could not reach the batch host
    assert_resumed_like_the_uninterrupted_run(result, checkout, "partition", uninterrupted_losses)


def test_a_lost_node_stops_the_other_within_the_timeout_and_the_job_resumes(netns_cluster, checkout, uninterrupted_losses):
    """Every process in n2's namespace is SIGKILLed mid-training (slurmd and the job's steps with it):
    n1's trainer loses its peer and exits with a line naming it; SLURM marks n2 DOWN and requeues the
    job; n2's slurmd starts again, and the job resumes to the uninterrupted run's losses."""
    n2 = cluster_command(netns_cluster, "netns", "n2")

    def kill_n2() -> None:
        pids = subprocess.run(["ip", "netns", "pids", n2], capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(["kill", "-KILL", *pids], check=True)

    result = fault_mid_training(netns_cluster, checkout, "lost-node", kill_n2, lambda: cluster_command(netns_cluster, "start"))
    print(f"lost node: spangpt's processes gone after {result['gone']} s, requeued after {result['requeued']:.0f} s, "
          f"completed {result['recovered']:.0f} s after the kill")
    assert set(result["gone"]) == {"n1", "n2"} and result["gone"]["n1"] < FAULT_TIMEOUT_S + 15, result["gone"]
    job_log = (checkout / f"slurm-spangpt-pretrain-{result['job']}.out").read_text()
    lost = re.findall(r"^error: rank 0: (lost its peer at 10\.213\.0\.12:\d+|a collective did not complete within)", job_log, re.M)
    assert len(lost) == 1, job_log
    assert_resumed_like_the_uninterrupted_run(result, checkout, "lost-node", uninterrupted_losses)
