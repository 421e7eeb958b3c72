"""Build the DeepSpeed engine: batch geometry, ZeRO stage, AdamW groups, clipping, autocast (fp32 weights in every precision)."""

from __future__ import annotations

import torch

from launcher.config import ConfigError, TrainConfig
from launcher.distributed import DistributedContext, rank_zero_stdout
from launcher.precision import deepspeed_section
from model import GPT


def batch_geometry(train: TrainConfig, world_size: int) -> tuple[int, int]:
    """(micro_batch_size, gradient_accumulation_steps) keeping the global batch at any world size."""
    global_batch = train.global_batch_size
    micro = train.micro_batch_size or global_batch // world_size
    if micro < 1 or global_batch % (world_size * micro):
        raise ConfigError(
            f"train.global_batch_size: {global_batch} is not divisible by world size x train.micro_batch_size "
            f"({world_size} x {micro})"
        )
    return micro, global_batch // (world_size * micro)


def deepspeed_config(train: TrainConfig, world_size: int, load_universal: bool = False) -> dict:
    micro, accumulation = batch_geometry(train, world_size)
    return {
        "train_batch_size": train.global_batch_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": train.grad_clip,
        "zero_optimization": zero_optimization(train.zero_stage),
        "steps_per_print": 2**31 - 1,  # no per-step lines; we log our own metrics
        "wall_clock_breakdown": False,
        "checkpoint": {"load_universal": load_universal},
        **deepspeed_section(train.precision),  # bf16/fp16: DeepSpeed's torch_autocast (launcher/precision.py)
    }


def zero_optimization(stage: int) -> dict:
    """ZeRO-3 partitions every parameter: DeepSpeed's default keeps tensors under 1e5 elements whole on
    every rank (to save gathers), which at n_embd 256 is every attention weight - a third of the model."""
    if stage == 3:
        return {"stage": 3, "stage3_param_persistence_threshold": 0}
    return {"stage": stage}


def adamw(model: GPT, train: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """SPEC: weight decay on Linear weights only. A client optimizer: DeepSpeed builds no op for it."""
    decayed = model.decayed_parameter_names()
    params = dict(model.named_parameters())
    groups = [
        {"params": [p for n, p in params.items() if n in decayed], "weight_decay": train.weight_decay},
        {"params": [p for n, p in params.items() if n not in decayed], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=train.learning_rate, betas=train.betas, fused=device.type == "cuda")


def build_engine(model: GPT, train: TrainConfig, context: DistributedContext, device: torch.device, load_universal: bool = False):
    import deepspeed

    model.to(device)
    with rank_zero_stdout(context):
        engine, _, _, _ = deepspeed.initialize(
            model=model,
            optimizer=adamw(model, train, device),
            config=deepspeed_config(train, context.world_size, load_universal),
            dist_init_required=False,
        )
    if train.zero_stage == 3:  # every precision keeps fp32 weights (launcher/precision.py)
        share_fp32_master_partitions(engine.optimizer)
    if train.compile:
        engine.compile()  # compiles the module in place: parameter names (checkpoints, exports) stay the same
    return engine


def share_fp32_master_partitions(optimizer) -> None:
    """ZeRO-3 in fp32: let the optimizer's master partition be the parameter partition, not a copy.

    DeepSpeed means to share them when dtype and device match (stage3.py, _create_fp32_partitions),
    but compares a torch.device with a device-name string, which is never equal, so every rank
    keeps a second fp32 copy of its partition (1/8 of ZeRO-0's state). We complete that branch:
    after each step DeepSpeed copies master into parameters, which is then a copy onto itself.
    """
    masters = getattr(optimizer, "fp32_partitioned_groups_flat", None)
    partitions = getattr(optimizer, "fp16_partitioned_groups_flat", None)
    if masters is None or partitions is None:
        return  # another DeepSpeed layout: keep its copies
    for master, partition in zip(masters, partitions):
        if master.dtype == partition.dtype and master.shape == partition.shape and master.device == partition.device:
            master.data = partition.data


def engine_reports_grad_norm(train: TrainConfig) -> bool:
    """ZeRO-0 (fp32 weights in every precision) clips with torch's clip_grad_norm_ and drops the norm;
    the ZeRO optimizers keep it."""
    return train.zero_stage != 0


def gradient_norm(module: torch.nn.Module) -> float:
    """L2 norm of the (already averaged) gradients, for the engines that do not report it."""
    norms = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def set_learning_rate(engine, lr: float) -> None:
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
