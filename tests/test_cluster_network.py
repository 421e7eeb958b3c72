"""Several hosts for real: the emulated cluster with each node in a network namespace of its own
(slurm/local-cluster.sh, netns mode), joined by veth pairs to a bridge, so a collective crosses an
interface and names resolve through per-namespace hosts files, not to 127.0.0.1.

Needs root, `ip netns`, Debian's slurm-wlm and munge (CI has them); elsewhere the tests skip with
the reason. The machine's own network namespace gets no address and no listener.
"""

from __future__ import annotations

import json
import math
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
