"""Precision modes (launcher/precision.py): fp32 weights in every mode; export and resume in each
mode that runs on a CPU, at ZeRO 0 and 3."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import CONFIGS, STEPS, pretrain_overrides
from launch import check, launch, losses
from launcher.precision import autocast
from model import GPT, VARIANTS
from models import small_config


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bf16_autocast_keeps_weights_gradients_and_loss_in_fp32(variant):
    """Only the products run in bf16: the logits come out bf16; LayerNorm, the loss and every gradient are fp32."""
    torch.manual_seed(0)
    model = GPT(small_config(variant, dropout=0.0, vocab_size=40, block_size=32, n_layer=4, n_head=2, n_embd=32, bottleneck_dim=8))
    x = torch.randint(1, 40, (2, 31))
    norms = []
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.register_forward_hook(lambda _module, _inputs, output: norms.append(output.dtype))
    with autocast("bf16", torch.device("cpu")):
        logits, loss = model(x, x)
    assert norms and set(norms) == {torch.float32}  # LayerNorm reads the fp32 residual stream
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    loss.backward()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.grad.dtype for p in model.parameters() if p.grad is not None} == {torch.float32}
    with torch.no_grad():
        _, fp32_loss = model(x, x)
    assert loss.item() != fp32_loss.item() and math.isclose(loss.item(), fp32_loss.item(), rel_tol=2e-2)


def test_tf32_on_a_cpu_trains_exactly_as_fp32(world, pretrain_runs, tmp_path):
    """A CPU has no TF32: the mode says so at start-up and changes no loss."""
    run = tmp_path / "tf32"
    result = check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, run, "train.precision=tf32"),
                          launcher="python"))
    assert "tf32 (fp32 on CPU)" in result.stdout
    assert losses(run) == losses(pretrain_runs["1rank"])


@pytest.mark.parametrize("stage", [0, 3])
def test_bf16_trains_exports_and_resumes_at_another_world_size(world, pretrain_runs, tmp_path, stage):
    """DeepSpeed's own bf16 mode could not export at ZeRO 0; autocast over fp32 weights exports at every
    stage, resumes on 1 rank from 2, and follows fp32's losses to bf16's precision."""
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    mode = ["train.precision=bf16", f"train.zero_stage={stage}"]
    result = check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, whole, *mode), nproc=2))
    assert "bf16 autocast, fp32 weights" in result.stdout
    check(launch([str(CONFIGS / "pretrain.yaml")],
                 pretrain_overrides(world, parted, *mode, f"train.max_steps={STEPS // 2}"), nproc=2))
    result = check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, parted, *mode), launcher="python"))
    assert f"steps {STEPS // 2} -> {STEPS} (resumed from step{STEPS // 2:08d})" in result.stdout

    bf16, resumed, fp32 = losses(whole), losses(parted), losses(pretrain_runs[f"zero{stage}"])
    assert sorted(bf16) == sorted(resumed) == list(range(1, STEPS + 1))
    assert bf16 != fp32  # the products did run in bf16
    for step in fp32:
        assert math.isclose(bf16[step], fp32[step], rel_tol=2e-2), step
        assert math.isclose(resumed[step], bf16[step], rel_tol=1e-2), step
    exported, reference = (load_file(run / "export" / "model.safetensors") for run in (whole, pretrain_runs[f"zero{stage}"]))
    assert exported.keys() == reference.keys()
    for name, tensor in exported.items():
        assert tensor.dtype == torch.float32
        assert torch.allclose(tensor, reference[name], atol=2e-2), name
