"""Resume through DeepSpeed's universal checkpoint: forced at the saving world size
(train.resume_universal, what the GPU smoke runs), and the optimizer state placed where the
optimizer's step looks for it (fused AdamW on CUDA: beside each parameter, step included)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from conftest import CONFIGS, STEPS, pretrain_overrides
from launch import check, launch, losses
from launcher.checkpoint import place_optimizer_state


def test_forced_universal_resume_at_the_same_world_size_continues_the_same_losses(world, pretrain_runs, tmp_path):
    run = tmp_path / "run"
    mode = ["train.zero_stage=1", "train.checkpoint_every=3"]
    check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, run, *mode, f"train.max_steps={STEPS // 2}"),
                 nproc=2))
    result = check(launch([str(CONFIGS / "pretrain.yaml")],
                          pretrain_overrides(world, run, *mode, "train.resume_universal=true"), nproc=2))
    assert f"(resumed from step{STEPS // 2:08d})" in result.stdout
    assert (run / "checkpoints" / f"step{STEPS // 2:08d}_universal").is_dir()
    resumed, whole = losses(run), losses(pretrain_runs["zero1"])
    assert sorted(resumed) == sorted(whole)
    for step, loss in whole.items():
        assert math.isclose(resumed[step], loss, rel_tol=1e-5), step


def adamw_with_loaded_state(device: str, fused: bool, step) -> tuple[torch.optim.AdamW, torch.nn.Parameter]:
    """An AdamW whose state looks as DeepSpeed's universal loader leaves it: moments and step from disk (CPU)."""
    param = torch.nn.Parameter(torch.zeros(3, device=device))
    optimizer = torch.optim.AdamW([param])
    optimizer.param_groups[0]["fused"] = fused  # what CUDA runs (launcher/engine.py); the placement rule reads it
    optimizer.state[param] = {"step": step, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}
    return optimizer, param


def test_fused_adamw_state_goes_to_the_parameters_device_step_included():
    optimizer, param = adamw_with_loaded_state("meta", fused=True, step=torch.tensor(7.0))  # meta stands for cuda
    place_optimizer_state(optimizer, Path("checkpoints/step7_universal"))
    state = optimizer.state[param]
    assert {key: value.device.type for key, value in state.items()} == {"step": "meta", "exp_avg": "meta", "exp_avg_sq": "meta"}


def test_for_each_adamw_keeps_step_a_cpu_tensor_and_a_loaded_number_becomes_one():
    optimizer, param = adamw_with_loaded_state("meta", fused=False, step=7)
    place_optimizer_state(optimizer, Path("checkpoints/step7_universal"))
    state = optimizer.state[param]
    assert state["step"].device.type == "cpu" and float(state["step"]) == 7.0 and state["step"].dtype == torch.float32
    assert state["exp_avg"].device.type == state["exp_avg_sq"].device.type == "meta"
