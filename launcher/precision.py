"""Numeric precision of the forward pass: fp32, tf32, or bf16/fp16 autocast, always over fp32 weights.

Every mode keeps weights, gradients and optimizer state in fp32, so DeepSpeed sees the same fp32
model in each and checkpoints, resume and the fp32 export work the same at every ZeRO stage.

- fp32: exact fp32 matmuls (the default; what a CPU runs fastest here).
- tf32: fp32 tensors, matmuls and convolutions on CUDA's TF32 tensor cores (10-bit mantissa
  products, fp32 sums). A CPU has no TF32: there it is fp32.
- bf16, fp16: DeepSpeed's own autocast (the `torch_autocast` section of its config): the engine's
  forward runs under torch.autocast for the accelerator DeepSpeed drives, so matmuls compute in
  16 bits while the weights stay fp32 masters. LayerNorm reads the fp32 residual stream, and the
  model computes softmax and the loss from fp32 (model/), so only the products lose precision.
  fp16 adds dynamic loss scaling (DeepSpeed's torch.amp.GradScaler; launcher/loss_scale.py).

Why DeepSpeed's autocast and not a torch.autocast around `engine(x, y)`: the engine's forward runs
inside `deepspeed.runtime.torch_autocast.autocast_if_enabled`, which, when
`torch.is_autocast_enabled()` is true and its config has no `torch_autocast` section, re-enters
`torch.autocast(enabled=False)`. Without a device argument that check reports CUDA's autocast only,
so an outer autocast is silently turned off on GPUs and kept on CPUs. With the section, the engine
enables autocast itself, on CPU and CUDA alike, and the suite exercises what a GPU runs.
`check_compute_dtype` then verifies, on the first forward of every run, that a Linear inside the
engine really computed in the mode's dtype.
"""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_matmul_precision(precision: str, device: torch.device) -> None:
    """TF32 on CUDA for `tf32` only; every other mode keeps fp32 products exact (torch's default)."""
    tf32 = precision == "tf32" and device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype a Linear's product comes out in under `precision`."""
    return AUTOCAST_DTYPES.get(precision, torch.float32)


def deepspeed_section(precision: str) -> dict:
    """The DeepSpeed config's `torch_autocast` section for `precision` (empty for fp32 and tf32).

    `lower_precision_safe_modules` names the modules whose gradients DeepSpeed may reduce across
    ranks in 16 bits (ZeRO 1-3; DeepSpeed's default: every Linear). None here: the gradients are
    fp32 already, a 3M-parameter model's reduction costs nothing next to its step, and a sum over
    many ranks in bf16 (8 significant bits) would lose what the fp32 masters keep.
    """
    if precision not in AUTOCAST_DTYPES:
        return {}
    dtype = "bfloat16" if precision == "bf16" else "float16"
    return {"torch_autocast": {"enabled": True, "dtype": dtype, "lower_precision_safe_modules": []}}


def describe(precision: str, device: torch.device) -> str:
    """The start-up line's words for the mode, saying where it changes nothing."""
    if precision == "tf32" and device.type != "cuda":
        return "tf32 (fp32 on CPU)"
    if precision == "bf16":
        return "bf16 autocast, fp32 weights"
    if precision == "fp16":
        return "fp16 autocast with dynamic loss scaling, fp32 weights"
    return precision


class ComputeDtypeCheck:
    """Records the dtype the first Linear inside the engine's forward computes in, once.

    A forward hook on the model's first nn.Linear: the first micro-batch of a run fills `seen`,
    then the hook removes itself. `verify` turns a mismatch into one ConfigError line, so a run
    whose bf16 is really fp32 (an outer autocast switched off by DeepSpeed, say) stops at step 1.
    """

    def __init__(self, module: torch.nn.Module, precision: str, enabled: bool = True) -> None:
        self.precision = precision
        self.seen: torch.dtype | None = None
        linear = next((m for m in module.modules() if isinstance(m, torch.nn.Linear)), None) if enabled else None
        self.handle = linear.register_forward_hook(self._record) if linear is not None else None

    def _record(self, _module, _inputs, output) -> None:
        self.seen = output.dtype
        self.handle.remove()

    def verify(self) -> None:
        if self.handle is None or self.seen is None:
            return
        from launcher.config import ConfigError  # config imports PRECISIONS from here

        expected = compute_dtype(self.precision)
        if self.seen != expected:
            raise ConfigError(
                f"train.precision: {self.precision}, but the engine's Linear layers computed in "
                f"{str(self.seen).removeprefix('torch.')} instead of {str(expected).removeprefix('torch.')}: "
                "autocast is not in effect inside DeepSpeed's forward")
        self.seen = None  # checked once
