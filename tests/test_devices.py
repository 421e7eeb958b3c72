"""Which device each rank trains on: one process per visible GPU, CPUs when asked or when none is.

A GPU cannot exist here, so the choice is a function of the visible GPU count, tested with counts a
GPU machine would show; the refusals that need no GPU run through the real launcher. Which GPU each
launcher's processes take (deepspeed, torchrun, srun with and without GPU binding) is one table in
tests/test_launcher_environments.py.
"""

from __future__ import annotations

import pytest
import torch

from conftest import CONFIGS, pretrain_overrides
from launch import launch
from launcher.config import ConfigError
from launcher.distributed import DistributedContext, choose_backend, choose_device
from test_launcher_errors import one_error_line


def rank(local_rank: int, local_world_size: int) -> DistributedContext:
    return DistributedContext(local_rank, local_rank, local_world_size, local_world_size, "launcher env")


def test_more_processes_than_gpus_is_refused_with_what_to_do():
    with pytest.raises(ConfigError) as error:
        choose_device("auto", rank(0, 2), 1)
    message = str(error.value)
    assert message.startswith("distributed.device: 2 processes on this node but 1 GPU visible")
    assert "--nproc_per_node 1" in message and "distributed.device=cpu" in message


def test_cpu_is_chosen_beside_gpus_only_when_asked():
    assert choose_device("cpu", rank(1, 2), 1) == torch.device("cpu")
    assert choose_backend("auto", torch.device("cpu")) == "gloo"
    assert choose_backend("auto", torch.device("cuda", 0)) == "nccl"
    assert choose_backend("gloo", torch.device("cuda", 0)) == "gloo"


@pytest.mark.parametrize("override, fragment", [
    ("distributed.device=cuda", "distributed.device: cuda, but no CUDA device is visible"),
    ("distributed.backend=nccl", "distributed.backend: nccl needs GPUs, but this run trains on CPUs"),
])
def test_a_device_this_machine_lacks_is_one_error_line_and_no_output(world, tmp_path, override, fragment):
    result = launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, tmp_path / "run", override), nproc=2)
    one_error_line(result, fragment)
    assert not (tmp_path / "run").exists()
