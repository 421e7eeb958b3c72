"""Each launcher's environment, as it reaches one training process on a multi-GPU node, gives that
process its rank, local rank, node size and device, or one refusal line.

One row per launch: the launcher, how many nodes, how many GPUs this process sees (the one mock: a
count, as CUDA would report it after CUDA_VISIBLE_DEVICES and device cgroups), and the variables that
launcher sets, written out as it writes them. Each row goes through what the trainer calls:
detect_context, then claim_device (launcher.distributed.start), which also leaves LOCAL_RANK naming
the CUDA ordinal, as DeepSpeed reads it. MASTER_ADDR is given wherever the SLURM path would
otherwise ask scontrol for the head node.

Where the variables come from: deepspeed's launcher, deepspeed/launcher/launch.py (RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_SIZE, CROSS_RANK, CROSS_SIZE and CUDA_VISIBLE_DEVICES, on one node and on each of
several); torchrun, torch/distributed/elastic/agent/server/local_elastic_agent.py; srun, the srun(1)
OUTPUT ENVIRONMENT VARIABLES and slurmstepd's GPU plugin (src/plugins/gres/common/gres_common.c): in
each task SLURM_GPUS_ON_NODE counts the step's GPUs on the node, while CUDA_VISIBLE_DEVICES and
SLURM_STEP_GPUS list only the task's own when it is bound (CUDA_VISIBLE_DEVICES renumbered from 0
under ConstrainDevices=yes).
"""

from __future__ import annotations

import pytest

from launcher.distributed import claim_device, detect_context

EIGHT = "0,1,2,3,4,5,6,7"
ADDRESS = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}


def deepspeed(rank: int, local_rank: int, node: int, nodes: int, per_node: int = 8) -> dict[str, str]:
    """launch.py on node `node`: the same variables on one node as on each of several."""
    return {**ADDRESS, "RANK": str(rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(nodes * per_node),
            "LOCAL_SIZE": str(per_node), "CROSS_RANK": str(node), "CROSS_SIZE": str(nodes),
            "CUDA_VISIBLE_DEVICES": EIGHT}


def torchrun(rank: int, local_rank: int, node: int, nodes: int, per_node: int = 8) -> dict[str, str]:
    """torchrun's worker variables (LocalElasticAgent._start_workers)."""
    return {**ADDRESS, "RANK": str(rank), "LOCAL_RANK": str(local_rank), "GROUP_RANK": str(node),
            "ROLE_RANK": str(rank), "ROLE_NAME": "default", "LOCAL_WORLD_SIZE": str(per_node),
            "WORLD_SIZE": str(nodes * per_node), "GROUP_WORLD_SIZE": str(nodes),
            "ROLE_WORLD_SIZE": str(nodes * per_node),
            "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_MAX_RESTARTS": "0", "TORCHELASTIC_RUN_ID": "77",
            "TORCHELASTIC_USE_AGENT_STORE": "False", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}


def srun(procid: int, localid: int, node: int, nodes: int, per_node: int, gpus_on_node: int | None,
         visible: str | None, step_gpus: str | None, **extra: str) -> dict[str, str]:
    """One srun task's variables (sbatch --nodes N --ntasks-per-node T ..., then srun)."""
    env = {**ADDRESS, "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_JOB_NODELIST": f"gpu[01-{nodes:02d}]",
           "SLURM_NNODES": str(nodes), "SLURM_NODEID": str(node), "SLURM_PROCID": str(procid),
           "SLURM_LOCALID": str(localid), "SLURM_NTASKS": str(nodes * per_node), "SLURM_NTASKS_PER_NODE": str(per_node),
           "SLURM_TASKS_PER_NODE": f"{per_node}(x{nodes})", "SLURM_STEP_TASKS_PER_NODE": f"{per_node}(x{nodes})",
           **extra}
    for name, value in (("SLURM_GPUS_ON_NODE", gpus_on_node), ("CUDA_VISIBLE_DEVICES", visible),
                        ("SLURM_STEP_GPUS", step_gpus)):
        if value is not None:
            env[name] = str(value)
    return env


ROWS = [
    # launcher, nodes, GPUs this process sees, distributed.device, environment
    #   -> (rank, local rank, local world size, device), or the refusal line's start
    ("deepspeed", 1, 8, "auto", deepspeed(5, 5, 0, 1), (5, 5, 8, "cuda:5")),
    ("deepspeed", 2, 8, "auto", deepspeed(13, 5, 1, 2), (13, 5, 8, "cuda:5")),
    ("torchrun", 1, 8, "auto", torchrun(5, 5, 0, 1), (5, 5, 8, "cuda:5")),
    ("torchrun", 2, 8, "auto", torchrun(13, 5, 1, 2), (13, 5, 8, "cuda:5")),
    ("torchrun", 1, 4, "auto", torchrun(1, 1, 0, 1, per_node=2), (1, 1, 2, "cuda:1")),  # fewer processes than GPUs
    ("torchrun", 1, 0, "auto", torchrun(1, 1, 0, 1, per_node=2), (1, 1, 2, "cpu")),  # no GPU: CPU processes
    # slurm/phase.sh: one srun task per node, torchrun in it starts one process per GPU, each seeing all 8
    ("torchrun in srun", 2, 8, "auto",
     {**srun(1, 0, 1, 2, 1, 8, EIGHT, EIGHT), **torchrun(13, 5, 1, 2)}, (13, 5, 8, "cuda:5")),
    ("srun, no binding", 2, 8, "auto", srun(13, 5, 1, 2, 8, 8, EIGHT, EIGHT), (13, 5, 8, "cuda:5")),
    ("srun --gpus-per-task=1", 2, 1, "auto",
     srun(13, 5, 1, 2, 8, 8, "5", "5", SLURM_TRES_PER_TASK="gres/gpu:1"), (13, 5, 8, "cuda:0")),
    ("srun --gpus-per-task=1 (before 23.11)", 2, 1, "auto",
     srun(13, 5, 1, 2, 8, 8, "5", "5", SLURM_GPUS_PER_TASK="1"), (13, 5, 8, "cuda:0")),
    ("srun --gpus-per-task=2", 1, 2, "auto",
     srun(3, 3, 0, 1, 4, 8, "6,7", "6,7", SLURM_TRES_PER_TASK="gres/gpu:2"), (3, 3, 4, "cuda:0")),
    ("srun --gpu-bind=single:1", 2, 1, "auto", srun(13, 5, 1, 2, 8, 8, "5", "5"), (13, 5, 8, "cuda:0")),
    # ConstrainDevices=yes: the task's cgroup holds its one GPU, which CUDA numbers 0
    ("srun, cgroup-bound devices", 2, 1, "auto",
     srun(13, 5, 1, 2, 8, 8, "0", "5", SLURM_TRES_PER_TASK="gres/gpu:1"), (13, 5, 8, "cuda:0")),
    # a device cgroup that leaves this task one GPU, with CUDA_VISIBLE_DEVICES unset (a site's TaskProlog)
    ("srun, cgroup only, CUDA_VISIBLE_DEVICES unset", 1, 1, "auto",
     srun(5, 5, 0, 1, 8, 8, None, None), (5, 5, 8, "cuda:0")),
    ("python", 1, 8, "auto", {}, (0, 0, 1, "cuda:0")),
    ("python", 1, 0, "auto", {}, (0, 0, 1, "cpu")),
    ("srun on CPUs", 1, 0, "auto", srun(1, 1, 0, 1, 2, None, None, None), (1, 1, 2, "cpu")),
    # refusals: one line each
    ("srun, 2 tasks on a 1-GPU node", 1, 1, "auto", srun(1, 1, 0, 1, 2, 1, "0", "0"),
     "distributed.device: 2 processes on this node but 1 GPU visible: launch one process per GPU"),
    ("torchrun, 2 processes on a 1-GPU node", 1, 1, "auto", torchrun(1, 1, 0, 1, per_node=2),
     "distributed.device: 2 processes on this node but 1 GPU visible: launch one process per GPU"),
    ("srun, 16 tasks on 8 GPUs, no binding", 1, 8, "auto", srun(9, 9, 0, 1, 16, 8, EIGHT, EIGHT),
     "distributed.device: 16 processes on this node but 8 GPUs visible"),
    ("srun --gpu-bind=single:2 (2 tasks per GPU)", 1, 1, "auto", srun(5, 5, 0, 1, 8, 4, "2", "2"),
     "distributed.device: 8 processes on this node share its 4 GPUs (1 visible to each)"),
    ("python, cuda asked, no GPU", 1, 0, "cuda", {},
     "distributed.device: cuda, but no CUDA device is visible"),
    ("a launcher with RANK and a node count but no local size", 2, 8, "auto",
     {**ADDRESS, "RANK": "13", "LOCAL_RANK": "5", "WORLD_SIZE": "16", "CROSS_SIZE": "2"},
     "WORLD_SIZE=16 on 2 nodes, but neither LOCAL_WORLD_SIZE nor LOCAL_SIZE says how many processes run on this one"),
]


@pytest.mark.parametrize("launcher, nodes, gpus, requested, environ, expected", ROWS, ids=[
    f"{row[0]}-{row[1]}node-{row[2]}gpu" for row in ROWS])
def test_each_launcher_gives_each_process_its_rank_and_device(launcher, nodes, gpus, requested, environ, expected):
    env = dict(environ)

    def place() -> tuple[int, int, int, str, int]:
        context = detect_context(env)
        device = claim_device(requested, context, gpus, env)
        return context.rank, context.local_rank, context.local_world_size, str(device), context.world_size

    if isinstance(expected, str):
        with pytest.raises(ValueError) as error:  # ConfigError (launcher.config) is a ValueError
            place()
        assert str(error.value).startswith(expected), str(error.value)
        assert "\n" not in str(error.value)
    else:
        *placed, world = place()
        assert tuple(placed) == expected
        assert world // expected[2] == nodes  # the node count run.json reports (launcher.run_record)
        device = expected[3]
        if device.startswith("cuda"):  # DeepSpeed's engine calls set_device(LOCAL_RANK)
            assert env["LOCAL_RANK"] == device.removeprefix("cuda:")
        assert env["RANK"] == str(expected[0]) and env["LOCAL_WORLD_SIZE"] == str(expected[2])
