"""Who am I in the job: rank detection, process-group start-up, and the rank-0 rule for output.

One training script runs under every launcher. `deepspeed` and `torchrun` set RANK, WORLD_SIZE
and LOCAL_RANK (and the processes on this node: torchrun as LOCAL_WORLD_SIZE, deepspeed as
LOCAL_SIZE); under `srun` alone, SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID say the same; a
plain `python` run is world size 1. DeepSpeed wants the torchrun variables (without them it tries
MPI discovery), so they are filled in from whichever source is present.

Which GPU: a process that sees all of its node's GPUs takes the one at its local rank; a task that
srun bound to its own GPUs (--gpus-per-task, --gpu-bind, per-task device cgroups) sees only those,
numbered from 0, and takes the first (tests/test_launcher_environments.py: one row per launcher).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import io
import logging
import os
import re
import socket
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from launcher.config import ConfigError
from slurm import job as slurm_job


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    launcher: str  # "launcher env" (deepspeed, torchrun), "slurm" or "single"
    gpus_on_node: int | None = None  # the srun step's GPUs on this node (SLURM_GPUS_ON_NODE), under srun alone

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes shared outputs and prints progress."""
        return self.rank == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_world_size(env: Mapping[str, str], world: int) -> int:
    """How many processes run on this node, under a launcher that sets RANK and WORLD_SIZE.

    torchrun says LOCAL_WORLD_SIZE. DeepSpeed's launcher (deepspeed/launcher/launch.py, which the
    `deepspeed` runner starts on one node and, through pdsh, on each of several) says LOCAL_SIZE,
    with CROSS_SIZE nodes, and no LOCAL_WORLD_SIZE. WORLD_SIZE is this node's count only on one
    node: on 2 nodes x 8 GPUs it would make 16 processes of this node's 8 and refuse the launch.
    """
    for name in ("LOCAL_WORLD_SIZE", "LOCAL_SIZE"):
        if env.get(name):
            return int(env[name])
    nodes = int(env.get("GROUP_WORLD_SIZE") or env.get("CROSS_SIZE") or 1)  # torchrun's, deepspeed's node count
    if nodes > 1:
        raise ValueError(f"WORLD_SIZE={world} on {nodes} nodes, but neither LOCAL_WORLD_SIZE nor LOCAL_SIZE says "
                         "how many processes run on this one: set LOCAL_WORLD_SIZE")
    return world


def slurm_gpus_on_node(env: Mapping[str, str]) -> int | None:
    """The GPUs of this srun step on this node, which tells a bound task from one that sees them all.

    slurmstepd sets SLURM_GPUS_ON_NODE in every task to the step's GPU count on the node, bound or
    not ("Number of GPUs available to the step on this node", srun(1) OUTPUT ENVIRONMENT VARIABLES;
    counted from the step's allocation, not the task's, in src/plugins/gres/common/gres_common.c
    since 22.05), while binding (--gpus-per-task, which implies --gpu-bind=per_task:N;
    --gpu-bind=single:1; ConstrainDevices=yes) narrows the task's CUDA_VISIBLE_DEVICES and
    SLURM_STEP_GPUS to its own. None without GPUs in the step (slurmstepd then unsets it).
    SLURM_GPUS_PER_TASK is no evidence: SLURM stopped exporting it in 23.11 (SLURM_TRES_PER_TASK).
    """
    value = env.get("SLURM_GPUS_ON_NODE", "")
    return int(value) if value.isdigit() else None


def detect_context(environ: dict[str, str] | None = None) -> DistributedContext:
    """Read rank and world size from the launcher's variables and export the torchrun ones.

    A launcher's RANK wins over SLURM's: torchrun (or deepspeed) inside one srun task per node
    starts one process per GPU, and SLURM's variables there describe the launcher's task."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        context = DistributedContext(
            int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), world, local_world_size(env, world), "launcher env"
        )
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        context = DistributedContext(
            int(env["SLURM_PROCID"]),
            int(env.get("SLURM_LOCALID", 0)),
            int(env["SLURM_NTASKS"]),
            slurm_job.tasks_on_this_node(env),
            "slurm",
            slurm_gpus_on_node(env),
        )
        if "MASTER_ADDR" not in env:  # looked up only when needed: it may ask slurmctld
            env["MASTER_ADDR"] = slurm_job.head_address(env)
        env.setdefault("MASTER_PORT", str(slurm_job.rendezvous_port(env.get("SLURM_JOB_ID", "0"))))
    else:
        context = DistributedContext(0, 0, 1, 1, "single")
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", str(free_port()))
    env["RANK"], env["WORLD_SIZE"] = str(context.rank), str(context.world_size)
    env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"] = str(context.local_rank), str(context.local_world_size)
    return context


def prepare_environment(context: DistributedContext, device: str = "auto") -> None:
    """Quiet DeepSpeed's start-up and per-step chatter (its warnings stay, from rank 0) and torch.distributed's deprecation noise;
    keep DeepSpeed's JIT-built ops in the environment, so only the first run ever builds them.
    DeepSpeed picks its accelerator once, at import: the one `device` (distributed.device) trains on."""
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if on_cuda else "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    warnings.filterwarnings("ignore", message=r".*TypedStorage is deprecated.*")
    logging.getLogger("torch.distributed").setLevel(logging.ERROR)
    for name in ("DeepSpeed", "deepspeed"):
        logging.getLogger(name).setLevel(deepspeed_log_level(context))


def deepspeed_log_level(context: DistributedContext) -> int:
    """DeepSpeed's INFO lines are per-step and start-up chatter; its warnings (an autocast it turned
    off, memory pressure, a checkpoint it could not read whole) reach the run's log from rank 0,
    where every rank would print the same line."""
    return logging.WARNING if context.is_main else logging.ERROR


@contextlib.contextmanager
def rank_zero_stdout(context: DistributedContext) -> Iterator[None]:
    """Library prints at start-up (DeepSpeed's op builds) reach the console from rank 0 only."""
    if context.is_main:
        yield
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def visible_gpus() -> int:
    """CUDA devices this process may use (CUDA_VISIBLE_DEVICES applied)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def processes_per_node() -> int:
    """What to launch on this node by default: one process per visible GPU, or 2 on CPUs (each
    takes half of the cores; two one-thread ranks outrun one two-thread rank, docs/bench.md)."""
    return visible_gpus() or 2


def bound_to_own_gpus(context: DistributedContext, gpus: int) -> bool:
    """Whether srun bound this task to its own share of the node's GPUs, so that the `gpus` it sees
    are its alone and its GPU is cuda:0, whatever its SLURM_LOCALID.

    The evidence is the step's GPU count on this node (slurm_gpus_on_node) above what this task
    sees: SLURM narrowed its view. Only a task srun started itself counts: under torchrun or
    deepspeed the launcher placed the processes, and a narrowed view (deepspeed --include) is then
    one all its processes share. Shares that cannot all be distinct (more tasks than GPUs, as
    --gpu-bind=single:2 gives) would put two ranks on one GPU, which NCCL refuses: refused here.
    """
    node = context.gpus_on_node
    if context.launcher != "slurm" or node is None or gpus >= node:
        return False
    if context.local_world_size * gpus > node:
        raise ConfigError(
            f"distributed.device: {context.local_world_size} processes on this node share its {node} GPUs "
            f"({gpus} visible to each): bind one GPU per task (srun --ntasks-per-node {node} --gpus-per-task 1), "
            f"or set distributed.device=cpu to run the {context.local_world_size} processes on CPUs (gloo)")
    return True


def choose_device(requested: str, context: DistributedContext, gpus: int) -> torch.device:
    """distributed.device for this rank: one process per GPU, CPUs when asked or when no GPU is visible.

    `gpus` is what this process sees (visible_gpus). Seeing the node's GPUs, it takes the one at
    its local rank; bound by srun to its own, the first of them. More processes on a node than
    visible GPUs, without such binding, is refused (two ranks on one GPU would share its memory and
    contend for it, and NCCL refuses two ranks on one device) with what to do instead.
    """
    if requested == "cpu" or (requested == "auto" and gpus == 0):
        return torch.device("cpu")
    if gpus == 0:
        raise ConfigError("distributed.device: cuda, but no CUDA device is visible "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                          "set distributed.device=cpu to train on CPUs")
    if bound_to_own_gpus(context, gpus):
        return torch.device("cuda", 0)
    if context.local_world_size > gpus:
        plural = "s" if gpus > 1 else ""
        raise ConfigError(
            f"distributed.device: {context.local_world_size} processes on this node but {gpus} GPU{plural} visible: "
            f"launch one process per GPU (torchrun --nproc_per_node {gpus}, deepspeed --num_gpus {gpus}), "
            f"or set distributed.device=cpu to run the {context.local_world_size} processes on CPUs (gloo)")
    return torch.device("cuda", context.local_rank)


def claim_device(requested: str, context: DistributedContext, gpus: int,
                 environ: dict[str, str] | None = None) -> torch.device:
    """choose_device, and LOCAL_RANK pointed at the chosen GPU for DeepSpeed.

    DeepSpeed takes LOCAL_RANK as this process's CUDA ordinal (the engine's set_device(LOCAL_RANK),
    ZeRO-3's local_device): a task srun bound to its own GPU trains on cuda:0 whatever its
    SLURM_LOCALID, so LOCAL_RANK says 0 there, as torchrun --virtual-local-rank does; elsewhere it
    already equals the ordinal. context.local_rank keeps the process's place on its node.
    """
    env = os.environ if environ is None else environ
    device = choose_device(requested, context, gpus)
    if device.type == "cuda":
        env["LOCAL_RANK"] = str(device.index)
    return device


def choose_backend(requested: str, device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes; an explicit choice must suit the device."""
    if requested == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if requested == "nccl" and device.type != "cuda":
        raise ConfigError("distributed.backend: nccl needs GPUs, but this run trains on CPUs; use gloo or auto")
    return requested


def share_cpu_threads(context: DistributedContext, device: torch.device) -> None:
    """Split this node's cores between its ranks unless the user set OMP_NUM_THREADS."""
    if device.type == "cuda" or "OMP_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(1, cores // context.local_world_size))


def start(context: DistributedContext, backend: str, timeout_minutes: float, device_setting: str = "auto") -> torch.device:
    """Join the process group (every world size, so collectives work the same at 1 rank) on the
    device `device_setting` (distributed.device) resolves to; a mismatch is a ConfigError before any join."""
    import deepspeed
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(deepspeed_log_level(context))
    device = claim_device(device_setting, context, visible_gpus())
    backend = choose_backend(backend, device)
    if context.world_size > context.local_world_size:  # several nodes: the collectives cross a network
        choose_network(context, os.environ)
    share_cpu_threads(context, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(minutes=timeout_minutes)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and restart != "0":
        # torchrun --max-restarts: the agent's store still holds the last round's addresses, and
        # workers that read them fail to connect; a per-round key prefix keeps each round apart.
        store = torch.distributed.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), context.world_size,
                                           is_master=False, timeout=timeout)
        torch.distributed.init_process_group(backend, store=torch.distributed.PrefixStore(f"spangpt/round{restart}", store),
                                             rank=context.rank, world_size=context.world_size, timeout=timeout)
    with rank_zero_stdout(context):
        deepspeed.init_distributed(dist_backend=backend, timeout=timeout, dist_init_required=not torch.distributed.is_initialized())
    give_deepspeed_the_timeout(context, timeout)
    return device


def give_deepspeed_the_timeout(context: DistributedContext, timeout: datetime.timedelta) -> None:
    """DeepSpeed reduces gradients over its own clone of the world group (deepspeed.utils.groups,
    _clone_world_group), made by torch.distributed.new_group without a timeout: torch's default
    (30 minutes for gloo, 10 for NCCL), not distributed.timeout_minutes. Across a network partition
    a rank then waits that long. Made here first, with the run's timeout, DeepSpeed uses this one."""
    from deepspeed.utils import groups

    if groups._WORLD_GROUP is None:
        groups._WORLD_GROUP = torch.distributed.new_group(ranks=list(range(context.world_size)), timeout=timeout)


def choose_network(context: DistributedContext, environ: dict[str, str]) -> None:
    """A multi-node job's interface towards the rendezvous (launcher/network.py), said once by rank 0;
    under SLURM a rendezvous on loopback is refused when the nodes are not all this host."""
    from launcher import network

    head = environ.get("MASTER_ADDR", "127.0.0.1")
    if environ.get("SLURM_JOB_NODELIST"):
        try:
            slurm_job.check_rendezvous(environ, head)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    line = network.choose_interface(head, environ)
    if context.is_main:
        print(f"distributed: {context.world_size} ranks on {context.world_size // context.local_world_size} nodes; {line}",
              flush=True)


def collective_failure(exc: RuntimeError, timeout_minutes: float) -> str | None:
    """One line for a collective that failed because a peer went away (a partition, a lost node), or
    None for any other error. gloo and NCCL say it with a source location first and a peer address
    or a timeout inside; the line keeps what names the peer or the wait."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not (isinstance(exc, torch.distributed.DistError) or re.search(r"gloo|NCCL|Timed out|Connection (closed|reset)", message)):
        return None
    detail = re.sub(r"^\[[^\]]*\]\s*", "", message)  # gloo's [file.cc:line] prefix
    if re.search(r"Timed out|timed out|timeout", detail):
        return f"a collective did not complete within distributed.timeout_minutes ({timeout_minutes:g}): {detail}"
    peer = re.search(r"\[([0-9a-fA-F.:]+)\]:(\d+)", detail)
    if peer:
        return f"lost its peer at {peer.group(1)}:{peer.group(2)} ({detail})"
    return f"a collective failed: {detail}"


def note_failure(context: DistributedContext, status: int) -> None:
    """Leave a note that this trainer failed where slurm.node watches (SPANGPT_FAILURE_NOTES): behind a
    lost link torchrun outlives its trainers, and the note tells the watcher to stop it."""
    notes = os.environ.get("SPANGPT_FAILURE_NOTES")
    if notes:
        with contextlib.suppress(OSError):
            (Path(notes) / f"rank-{context.rank}").write_text(f"{status}\n")


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def stop() -> None:
    """Leave the process group through DeepSpeed when it joined one: DeepSpeed keeps its own clone
    of the world group, and torch's destroy_process_group alone leaves that clone to die during
    interpreter teardown, where gloo's destructor can abort the process (SIGABRT after all work)."""
    if not torch.distributed.is_initialized():
        return
    import deepspeed.comm

    if deepspeed.comm.is_initialized():
        deepspeed.comm.destroy_process_group()  # also drops deepspeed.utils.groups' references
    else:
        torch.distributed.destroy_process_group()
    gc.collect()  # anything else still holding a group lets go while the interpreter is whole
