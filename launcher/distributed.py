"""Who am I in the job: rank detection, process-group start-up, and the rank-0 rule for output.

One training script runs under every launcher. `deepspeed` and `torchrun` set RANK, WORLD_SIZE
and LOCAL_RANK; under `srun` alone, SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID say the same;
a plain `python` run is world size 1. DeepSpeed wants the torchrun variables (without them it
tries MPI discovery), so they are filled in from whichever source is present.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import io
import logging
import os
import socket
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

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

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes shared outputs and prints progress."""
        return self.rank == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def detect_context(environ: dict[str, str] | None = None) -> DistributedContext:
    """Read rank and world size from the launcher's variables and export the torchrun ones."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        context = DistributedContext(
            int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), world, int(env.get("LOCAL_WORLD_SIZE", world)), "launcher env"
        )
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        context = DistributedContext(
            int(env["SLURM_PROCID"]),
            int(env.get("SLURM_LOCALID", 0)),
            int(env["SLURM_NTASKS"]),
            slurm_job.tasks_on_this_node(env),
            "slurm",
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
    """Quiet DeepSpeed's start-up and per-step chatter and torch.distributed's deprecation noise;
    keep DeepSpeed's JIT-built ops in the environment, so only the first run ever builds them.
    DeepSpeed picks its accelerator once, at import: the one `device` (distributed.device) trains on."""
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if on_cuda else "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    warnings.filterwarnings("ignore", message=r".*TypedStorage is deprecated.*")
    for name in ("DeepSpeed", "deepspeed", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)


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


def choose_device(requested: str, context: DistributedContext, gpus: int) -> torch.device:
    """distributed.device for this rank: one process per GPU, CPUs when asked or when no GPU is visible.

    More processes on a node than visible GPUs is refused (two ranks on one GPU would share its
    memory and contend for it, and NCCL refuses two ranks on one device) with what to do instead.
    """
    if requested == "cpu" or (requested == "auto" and gpus == 0):
        return torch.device("cpu")
    if gpus == 0:
        raise ConfigError("distributed.device: cuda, but no CUDA device is visible "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                          "set distributed.device=cpu to train on CPUs")
    if context.local_world_size > gpus:
        plural = "s" if gpus > 1 else ""
        raise ConfigError(
            f"distributed.device: {context.local_world_size} processes on this node but {gpus} GPU{plural} visible: "
            f"launch one process per GPU (torchrun --nproc_per_node {gpus}, deepspeed --num_gpus {gpus}), "
            f"or set distributed.device=cpu to run the {context.local_world_size} processes on CPUs (gloo)")
    return torch.device("cuda", context.local_rank)


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

    ds_logger.setLevel(logging.ERROR)
    device = choose_device(device_setting, context, visible_gpus())
    backend = choose_backend(backend, device)
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
    return device


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
