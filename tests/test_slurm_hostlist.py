"""slurm/job.py without a cluster: SLURM's host lists, the head node, the port, the CLI.

The emulated cluster (tests/test_slurm.py) runs the same code under real SLURM; these tests cover
what it cannot show: nodes without scontrol, names SLURM emits on big clusters, malformed lists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from slurm.job import expand_hostlist, head_address, head_node, rendezvous_port, tasks_on_this_node

NO_SCONTROL = {"PATH": ""}  # a node without SLURM's client tools

EXPANSIONS = {
    "gpu01": ["gpu01"],
    "a1,b[2-3],c": ["a1", "b2", "b3", "c"],
    "gpu[01-04]": ["gpu01", "gpu02", "gpu03", "gpu04"],
    "x[1-10]": ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10"],
    "x[001-3]": ["x001", "x002", "x003"],  # the low end's width pads the range
    "n[08-010]": ["n08", "n09", "n10"],
    "n[1-3,7]": ["n1", "n2", "n3", "n7"],
    "n[3,1],n2": ["n3", "n1", "n2"],  # SLURM keeps the order given, unsorted
    "rack[1-2]-node[01-02]": ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"],
    # With three groups SLURM's own order is not the plain cartesian one: the middle group is outermost.
    "a[1-2]b[3-4]c[5-6]": ["a1b3c5", "a1b3c6", "a2b3c5", "a2b3c6", "a1b4c5", "a1b4c6", "a2b4c5", "a2b4c6"],
    "cn-7-[09-11]": ["cn-7-09", "cn-7-10", "cn-7-11"],
    "a1-[2-3]-b[4,6],gpu-2x[1-2]": ["a1-2-b4", "a1-2-b6", "a1-3-b4", "a1-3-b6", "gpu-2x1", "gpu-2x2"],
}

MALFORMED = {
    "": "nodelist is empty",
    "gpu[01-04": "nodelist 'gpu[01-04': '[' at 3 is never closed",
    "gpu01]": "nodelist 'gpu01]': ']' at 5 without its '['",
    "a[[1]]": "nodelist 'a[[1]]': '[' at 2 inside another bracket",
    "n[5-3]": "nodelist 'n[5-3]': range 5-3 runs backwards",
    "a[]": "nodelist 'a[]': [] holds '', not a number or a range like 01-04",
    "n[1-x]": "nodelist 'n[1-x]': [1-x] holds '1-x', not a number or a range like 01-04",
    "a,,b": "nodelist 'a,,b': empty host name (a stray comma?)",
    "node[1-2]-ib": "nodelist 'node[1-2]-ib': '-ib' after the last ']' (SLURM allows no suffix there)",
    "a b": "nodelist 'a b': contains whitespace",
    "n[0-99999]": "nodelist 'n[0-99999]': range 0-99999 has more than 65536 hosts",
}


@pytest.mark.parametrize("nodelist", EXPANSIONS)
def test_expand_hostlist_reads_what_slurm_emits(nodelist):
    assert expand_hostlist(nodelist) == EXPANSIONS[nodelist]


@pytest.mark.parametrize("nodelist", MALFORMED)
def test_a_malformed_nodelist_is_one_line_naming_it(nodelist):
    with pytest.raises(ValueError) as error:
        expand_hostlist(nodelist)
    assert str(error.value) == MALFORMED[nodelist] and "\n" not in str(error.value)


def test_expansion_matches_scontrol(tmp_path):
    """SLURM's own expansion is the reference, where its client is installed (it wants a slurm.conf)."""
    if shutil.which("scontrol") is None:
        pytest.skip("scontrol not installed (apt-get install slurm-client)")
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=oracle\nSlurmctldHost=localhost\nNodeName=n1 CPUs=1\nPartitionName=p Nodes=n1\n")
    lists = [*EXPANSIONS, "a[1-2]b[3-4]c[5-6]d[7-8]", "a[1-3],a2"]
    for nodelist in lists:
        shown = subprocess.run(["scontrol", "show", "hostnames", nodelist], env={**os.environ, "SLURM_CONF": str(conf)},
                               capture_output=True, text=True, timeout=30, check=True).stdout.split()
        assert expand_hostlist(nodelist) == shown, nodelist


def test_head_node_without_scontrol_is_the_first_host_not_the_prefix():
    env = {**NO_SCONTROL, "SLURM_JOB_NODELIST": "gpu[01-04]"}
    assert head_node(env) == "gpu01" and head_address(env) == "gpu01"
    assert head_node({**NO_SCONTROL, "SLURM_NODELIST": "rack[3-4]-node[07-08]"}) == "rack3-node07"
    assert head_address({}) == "127.0.0.1"  # not in a job
    with pytest.raises(ValueError, match="nodelist 'gpu\\[01-04': '\\[' at 3 is never closed"):
        head_node({**NO_SCONTROL, "SLURM_JOB_NODELIST": "gpu[01-04"})


def fake_scontrol(folder: Path) -> dict[str, str]:
    """An scontrol that answers like SLURM for a cluster whose node names do not resolve."""
    script = folder / "scontrol"
    script.write_text('#!/bin/sh\ncase "$2" in\n'
                      '  hostnames) echo head-7; echo other ;;\n'
                      '  node) echo "NodeName=$3 Arch=x86_64"; echo "   NodeAddr=10.1.2.3 NodeHostName=$3" ;;\n'
                      'esac\n')
    script.chmod(0o755)
    return {"PATH": str(folder), "SLURM_JOB_NODELIST": "head-7,other"}


def test_head_address_is_scontrols_node_addr(tmp_path):
    env = fake_scontrol(tmp_path)
    assert head_node(env) == "head-7" and head_address(env) == "10.1.2.3"


def test_rendezvous_port_is_derived_from_the_job_id():
    assert rendezvous_port(77) == rendezvous_port("77") == 20077
    assert rendezvous_port(0) == 20000 and rendezvous_port(20077) == 20077 and rendezvous_port(39999) == 39999
    with pytest.raises(ValueError, match="SLURM_JOB_ID 'x1' is not a number"):
        rendezvous_port("x1")


def test_tasks_on_this_node():
    assert tasks_on_this_node({"SLURM_NTASKS_PER_NODE": "4"}) == 4
    assert tasks_on_this_node({"SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "3"}) == 1
    assert tasks_on_this_node({"SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "2"}) == 2
    assert tasks_on_this_node({}) == 1


def test_srun_rank_detection_points_master_addr_at_the_first_host():
    from launcher.distributed import detect_context

    env = {**NO_SCONTROL, "SLURM_PROCID": "1", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123456",
           "SLURM_TASKS_PER_NODE": "2(x4)", "SLURM_JOB_NODELIST": "gpu[01-04]"}
    detect_context(env)
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["LOCAL_WORLD_SIZE"]) == ("gpu01", "23456", "2")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slurm.job", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_cli_run_dir_prints_the_resolved_run_dir():
    result = cli("run-dir", "--config", "configs/demo/pretrain.yaml", "configs/variants/rope.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "runs/demo/rope/pretrain\n"
    result = cli("run-dir", "--config", "configs/demo/pretrain.yaml", "--set", "run_dir=runs/x/{seed}", "seed=3")
    assert result.stdout == "runs/x/3\n"


@pytest.mark.parametrize("args, message", [
    (["run-dir", "--config", "missing.yaml"], "error: missing.yaml: config file not found"),
    (["run-dir", "--config", "configs/demo/pretrain.yaml", "--set", "model.n_head=3"],
     "error: configs/demo/pretrain.yaml: model.n_embd: 64 is not divisible by model.n_head (3)"),
    (["run-dir", "--config", "configs/demo/pretrain.yaml", "--set", "bogus"],
     "error: --set bogus: expected key=value, e.g. train.zero_stage=3"),
    (["run-dir", "--config", "configs"], "error: configs: Is a directory"),
    (["run-dir"], "error: python -m slurm.job run-dir: the following arguments are required: --config"),
], ids=["missing-file", "invalid-value", "bad-override", "directory", "no-config"])
def test_cli_run_dir_errors_are_one_line_and_exit_2(args, message):
    result = cli(*args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n")


def test_cli_rendezvous():
    job = {**NO_SCONTROL, "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "gpu[01-04]"}
    assert cli("rendezvous", env=job).stdout == "gpu01:20077\n"
    bad = cli("rendezvous", env={**job, "SLURM_JOB_NODELIST": "gpu[04-01]"})
    assert (bad.returncode, bad.stderr) == (2, "error: nodelist 'gpu[04-01]': range 04-01 runs backwards\n")
    outside = cli("rendezvous", env={k: v for k, v in job.items() if k != "SLURM_JOB_ID"})
    assert outside.returncode == 2
    assert outside.stderr == "error: SLURM_JOB_ID is not set: rendezvous runs inside a SLURM job\n"


def test_the_trainer_under_srun_names_a_malformed_nodelist_in_one_line(tmp_path):
    """Plain `srun launcher/train.py` on a node without scontrol, given a nodelist it cannot read."""
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
    env.update(SLURM_PROCID="0", SLURM_NTASKS="2", SLURM_LOCALID="0", SLURM_JOB_ID="7", SLURM_JOB_NODELIST="gpu[01-04",
               PATH=str(Path(sys.executable).parent))
    result = subprocess.run([sys.executable, str(ROOT / "launcher" / "train.py"), "--config", str(ROOT / "configs" / "pretrain.yaml"),
                             "--set", f"run_dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: nodelist 'gpu[01-04': '[' at 3 is never closed\n"
    assert not (tmp_path / "run").exists()
