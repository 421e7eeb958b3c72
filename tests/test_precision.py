"""Precision modes (launcher/precision.py): fp32 weights in every mode; DeepSpeed's own autocast
computes the products in 16 bits inside the engine, also where `torch.is_autocast_enabled()` answers
as it does on CUDA; export and resume in each mode, at ZeRO 0 and 3; fp16's loss scale resumes."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import CONFIGS, STEPS, pretrain_overrides
from launch import ROOT, check, launch, losses, metrics, worker_env
from launcher.config import ConfigError
from launcher.distributed import free_port
from launcher.precision import ComputeDtypeCheck
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
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what DeepSpeed's torch_autocast enters inside the engine
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


@pytest.mark.parametrize("precision, stage", [("bf16", 0), ("bf16", 3), ("fp16", 0), ("fp16", 3)])
def test_16_bit_modes_train_export_and_resume_at_another_world_size(world, pretrain_runs, tmp_path, precision, stage):
    """Autocast over fp32 weights exports at every stage, resumes on 1 rank from 2, and follows fp32's
    losses to 16-bit precision. fp16 starts its loss scale at 2^18 here, so the first steps overflow,
    are skipped and counted, and the scale settles at 2^16: a resume that forgot the scale would
    start at 2^18 again and skip steps that the uninterrupted run took."""
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    mode = [f"train.precision={precision}", f"train.zero_stage={stage}", "train.loss_scale_power=18"]
    result = check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, whole, *mode), nproc=2))
    assert {"bf16": "bf16 autocast, fp32 weights", "fp16": "fp16 autocast with dynamic loss scaling"}[precision] in result.stdout
    check(launch([str(CONFIGS / "pretrain.yaml")],
                 pretrain_overrides(world, parted, *mode, f"train.max_steps={STEPS // 2}"), nproc=2))
    result = check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, parted, *mode), launcher="python"))
    assert f"steps {STEPS // 2} -> {STEPS} (resumed from step{STEPS // 2:08d})" in result.stdout

    bf16, resumed, fp32 = losses(whole), losses(parted), losses(pretrain_runs[f"zero{stage}"])
    assert sorted(bf16) == sorted(resumed) == list(range(1, STEPS + 1))
    if precision == "bf16":
        assert bf16 != fp32  # the products did run in bf16
        for step in fp32:
            assert math.isclose(bf16[step], fp32[step], rel_tol=2e-2), step
    for step in bf16:
        assert math.isclose(resumed[step], bf16[step], rel_tol=1e-2), step
    if precision == "fp16":
        scales = {run: [(m["train/loss_scale"], m["train/skipped_steps"]) for m in metrics(run)] for run in (whole, parted)}
        assert scales[whole] == scales[parted] == [(2.0**17, 1.0)] + [(2.0**16, 2.0)] * (STEPS - 1)
        assert f"pretrain: fp16 loss scale 65536, 2 of {STEPS} steps skipped on overflow" in result.stdout
        assert math.isclose(bf16[1], fp32[1], rel_tol=1e-2)  # same weights and batch, fp16 products
        # a skipped step leaves the weights alone; its batch is consumed, so the schedule goes on
        grad_norms = {m["step"]: m["train/grad_norm"] for m in metrics(whole)}
        assert not math.isfinite(grad_norms[1]) and not math.isfinite(grad_norms[2])
        assert all(math.isfinite(grad_norms[step]) and grad_norms[step] < 10 for step in range(3, STEPS + 1))  # unscaled
    exported, reference = (load_file(run / "export" / "model.safetensors") for run in (whole, pretrain_runs[f"zero{stage}"]))
    assert exported.keys() == reference.keys()
    for name, tensor in exported.items():
        assert tensor.dtype == torch.float32
        assert torch.allclose(tensor, reference[name], atol=2e-2), name


@pytest.mark.parametrize("precision, dtype", [("bf16", "bfloat16"), ("fp16", "float16"), ("fp32", "float32")])
@pytest.mark.parametrize("as_cuda", [False, True], ids=["cpu-autocast-check", "cuda-autocast-check"])
def test_linear_layers_inside_the_engine_compute_in_the_modes_dtype(world, tmp_path, precision, dtype, as_cuda):
    """DeepSpeed's engine.forward turns an outer torch.autocast off when torch.is_autocast_enabled()
    (no device: CUDA's answer) is true and its config has no torch_autocast section: bf16 on a GPU
    was then fp32. The probe makes that check answer for the CPU, as it answers on a GPU."""
    probe, run = tmp_path / "dtypes.json", tmp_path / "run"
    overrides = pretrain_overrides(world, run, f"train.precision={precision}", "train.max_steps=2")
    env = {**worker_env(), "AUTOCAST_PROBE_OUT": str(probe), "AUTOCAST_PROBE_AS_CUDA": "1" if as_cuda else "0"}
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "autocast_probe.py"), "--config",
                             str(CONFIGS / "pretrain.yaml"), "--set", *overrides],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    check(result)
    assert json.loads(probe.read_text()) == [dtype]


def test_deepspeeds_warnings_reach_the_run_log_from_rank_0_alone(world, tmp_path):
    """The old way, an outer autocast around the engine, under the GPU's answer to the autocast check:
    DeepSpeed turns autocast off and warns. Its warning must be in the run's output, once (rank 0),
    while its INFO chatter stays out; the products then are fp32, as they were on GPUs."""
    probe, run = tmp_path / "dtypes.json", tmp_path / "run"
    overrides = pretrain_overrides(world, run, "train.max_steps=2")
    env = {**worker_env(), "AUTOCAST_PROBE_OUT": str(probe), "AUTOCAST_PROBE_AS_CUDA": "1", "AUTOCAST_PROBE_OUTER": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                             str(free_port()), str(ROOT / "tests" / "autocast_probe.py"), "--config",
                             str(CONFIGS / "pretrain.yaml"), "--set", *overrides],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    check(result)
    output = result.stdout + result.stderr
    assert output.count("torch.autocast is enabled outside DeepSpeed but disabled within the DeepSpeed engine") == 1
    assert "[INFO]" not in output
    assert json.loads(probe.read_text()) == ["float32"]


def test_a_run_whose_products_are_not_in_its_precision_stops_with_one_line():
    """The trainer's own check (first forward of every run): a Linear computing fp32 under bf16 is refused."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    check_dtype = ComputeDtypeCheck(model, "bf16")
    model(torch.ones(1, 4))
    with pytest.raises(ConfigError) as error:
        check_dtype.verify()
    assert str(error.value) == ("train.precision: bf16, but the engine's Linear layers computed in float32 instead of "
                                "bfloat16: autocast is not in effect inside DeepSpeed's forward")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.ones(1, 4))  # the hook removed itself after the first forward
    assert check_dtype.seen == torch.float32
