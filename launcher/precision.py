"""Numeric precision of the forward pass: fp32, tf32 or bf16 autocast, always over fp32 weights.

Every mode keeps weights, gradients and optimizer state in fp32, so DeepSpeed sees the same fp32
model in each and checkpoints, resume and the fp32 export work the same at every ZeRO stage.

- fp32: exact fp32 matmuls (the default; what a CPU runs fastest here).
- tf32: fp32 tensors, matmuls and convolutions on CUDA's TF32 tensor cores (10-bit mantissa
  products, fp32 sums). A CPU has no TF32: there it is fp32.
- bf16: torch.autocast runs matmuls in bf16 while the weights stay fp32 masters. LayerNorm reads
  the fp32 residual stream, and the model computes softmax and the loss from fp32 (model/), so
  only the products lose precision. DeepSpeed's own bf16 mode, which this replaces, keeps bf16
  weights, LayerNorm, softmax and loss, checks every parameter for overflow each step, and at
  ZeRO 0 writes checkpoints no fp32 export can be gathered from.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def set_matmul_precision(precision: str, device: torch.device) -> None:
    """TF32 on CUDA for `tf32` only; every other mode keeps fp32 products exact (torch's default)."""
    tf32 = precision == "tf32" and device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The forward pass's context: bf16 autocast for `bf16`, nothing otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(precision: str, device: torch.device) -> str:
    """The start-up line's words for the mode, saying where it changes nothing."""
    if precision == "tf32" and device.type != "cuda":
        return "tf32 (fp32 on CPU)"
    if precision == "bf16":
        return "bf16 autocast, fp32 weights"
    return precision
