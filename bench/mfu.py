"""Model FLOPs utilisation: the model's own matmul FLOPs per trained token, and the GPU's dense peak.

    python -m bench.mfu --data DIR [--set KEY=VALUE ...]    each variant's count beside 6N + 12LdT

`flop_count(run)` builds a few micro-batches exactly as training does (the phase's
stream at world size 1, data/stream.py, then data/loader.py's cut of the trailing columns whose
targets are all PAD), runs the variant's forward and backward on each under
`torch.utils.flop_counter.FlopCounterMode`, and divides the FLOPs by the target positions the
trainer's tokens/s counts: micro_batch_size x (block_size - 1) per micro-batch (launcher/trainer.py:
`tokens_per_step` = global batch x (block_size - 1), trimmed and PAD positions included). So
tokens/s x flops_per_token is the model's FLOP/s, and each variant is charged for what it computes:
the positions kept after trimming, the perceiver's middle blocks on its bottleneck_dim slots, the
synthesizer's T columns of W2. `model_flops_per_token(variant, corpus, overrides)` is that figure for
bench/gpu.py's runs (configs/pretrain.yaml, world size 1).

Counted (forward and backward; FlopCounterMode counts 2 FLOPs per multiply-add): every matrix
product, i.e. aten mm/addmm/bmm/baddbmm (each nn.Linear: query, key, value, proj, the MLP, the
synthesizer's w1 and value, the perceiver's projections; the head), and the attention products
q.k^T and weights.v (the synthesizer's hidden.W2 and weights.v), each backward product (grad of
input and of weight: twice the forward).
Not counted: embedding lookups (no product; their backward is a scatter-add), LayerNorm, GELU,
softmax, dropout, masking, bias and residual adds, the rotary rotation, the loss, the optimizer,
gradient clipping and communication; recomputation (a flash kernel's backward recomputes the
scores: hardware work, not model FLOPs).
Causal masks: attention is counted as the full T_q x T_k product. FlopCounterMode's own formulas
for the fused SDPA kernels say so ("we aren't accounting for causal attention"), and the math path
it is run on here computes the full product and then masks it. A causal flash kernel on a GPU skips
the blocks above the diagonal, so for vanilla and rope the attention products it executes are
about half of those counted (the PaLM 12 L d T convention counts them whole too; at SPEC's shape
they are about a tenth of the total).
Why the math path: on CPU, `scaled_dot_product_attention` without dropout runs
`_scaled_dot_product_flash_attention_for_cpu`, for which FlopCounterMode has no formula (it counts
0: checked in torch 2.13), so the count is taken under `sdpa_kernel(SDPBackend.MATH)`, which gives
the same numbers as the CUDA kernels' formulas. The count depends only on shapes, so the model runs
on the meta device by default (no arithmetic, well under a second per micro-batch); device="cpu"
gives identical numbers.

`peak_tflops(device_name, precision)` looks the GPU up by its exact `torch.cuda.get_device_name`
string (an H100 PCIe is not an H100 SXM) and gives the data sheet's dense figure (sparsity
halved out) for fp32 (CUDA cores), tf32, bf16 and fp16 (tensor cores); None for a name or a
precision it does not know (V100 and T4 have no tf32 or bf16).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

# Dense TFLOP/s per GPU, by exact CUDA device name: NVIDIA data sheets (tensor-core figures printed
# "with sparsity" halved). fp32 is the CUDA-core rate (a plain fp32 matmul); None: no such mode.
_H100_SXM = {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}     # data sheet 989* / 1,979*
_H100_PCIE = {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5}    # 756* / 1,513*
_HOPPER_NVL = {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}   # per GPU: 835* / 1,671*
_A100 = {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}         # SXM4 and PCIe alike
_V100_SXM2 = {"fp32": 15.7, "tf32": None, "bf16": None, "fp16": 125.0}
_V100_PCIE = {"fp32": 14.0, "tf32": None, "bf16": None, "fp16": 112.0}
PEAK_TFLOPS: dict[str, dict[str, float | None]] = {
    "NVIDIA H100 80GB HBM3": _H100_SXM,
    "NVIDIA H100 PCIe": _H100_PCIE,
    "NVIDIA H100 NVL": _HOPPER_NVL,
    "NVIDIA H200": _H100_SXM,            # H200 SXM: the H100 SXM's compute, more memory
    "NVIDIA H200 NVL": _HOPPER_NVL,
    "NVIDIA A100-SXM4-40GB": _A100,
    "NVIDIA A100-SXM4-80GB": _A100,
    "NVIDIA A100-PCIE-40GB": _A100,
    "NVIDIA A100 80GB PCIe": _A100,
    "Tesla V100-SXM2-16GB": _V100_SXM2,
    "Tesla V100-SXM2-32GB": _V100_SXM2,
    "Tesla V100-PCIE-16GB": _V100_PCIE,
    "Tesla V100-PCIE-32GB": _V100_PCIE,
    "Tesla T4": {"fp32": 8.1, "tf32": None, "bf16": None, "fp16": 65.0},
    "NVIDIA L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},      # 120* / 242*
    "NVIDIA A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
    "NVIDIA L40S": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05},
}


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The dense peak of the GPU named exactly `device_name` in `precision` (fp32, tf32, bf16, fp16), or None."""
    return PEAK_TFLOPS.get(device_name.strip(), {}).get(precision)


@dataclass(frozen=True)
class FlopCount:
    """A variant's counted training FLOPs per target token, and what they were counted over."""

    variant: str
    flops_per_token: float        # forward + backward matmul FLOPs / (micro_batch_size x (block_size - 1))
    forward_flops_per_token: float
    forward_by_module: dict[str, float]  # the forward's per top-level module: blocks, head (perceiver: down, up)
    micro_batches: int            # how many real micro-batches were counted
    micro_batch_size: int
    target_positions: int         # block_size - 1: what the trainer counts per example
    widths: tuple[int, ...]       # columns each micro-batch kept after the trailing all-PAD cut
    vocab_size: int

    @property
    def mean_width(self) -> float:
        return sum(self.widths) / len(self.widths)

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_width": self.mean_width}


def training_data(run, world_size: int = 1):
    """The phase's TrainingData as launcher/phases.py builds it, for rank 0 of `world_size`."""
    from launcher.distributed import DistributedContext
    from launcher.phases import finetuning_data, pretraining_data

    context = DistributedContext(rank=0, local_rank=0, world_size=world_size, local_world_size=world_size,
                                 launcher="single")
    return (pretraining_data if run.phase == "pretrain" else finetuning_data)(run, context)


def count_flops(model, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int, dict[str, int]]:
    """One micro-batch's matmul FLOPs: (forward + backward, forward, forward per top-level module).

    Modules are told apart in the forward only: FlopCounterMode's module tracking charges backward
    products to whichever module's backward hook fired last (the perceiver's `up` collects those of
    `down` and the blocks), so a per-module backward split would be wrong.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    forward, backward = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH):
        with forward:
            _, loss = model(x, y)
        with backward:
            loss.backward()
    model.zero_grad(set_to_none=True)
    by_module: dict[str, int] = {}
    for name, counts in forward.get_flop_counts().items():
        parts = name.split(".")
        if len(parts) == 2 or (len(parts) == 3 and parts[2].isdigit()):  # GPT.head, GPT.blocks.0
            by_module[parts[1]] = by_module.get(parts[1], 0) + sum(counts.values())
    return forward.get_total_flops() + backward.get_total_flops(), forward.get_total_flops(), by_module


def flop_count(run, micro_batches: int = 16, device: str = "meta", world_size: int = 1) -> FlopCount:
    """`run`'s (a RunConfig) model FLOPs per trained target token over its first `micro_batches`
    micro-batches, built as training builds them (at `world_size`, rank 0)."""
    from data.loader import InStepLoader
    from launcher.config import gpt_config
    from model import GPT

    data = training_data(run, world_size)
    config = gpt_config(run, len(data.vocab))
    with torch.device(device):
        model = GPT(config)
    model.train()  # dropout as in training (it adds no FLOPs)
    loader = InStepLoader(data.stream)
    by_shape: dict[tuple[int, int], tuple[int, int, dict[str, int]]] = {}  # the count depends on the shape alone
    total = forward = 0
    modules: dict[str, int] = {}
    widths = []
    for _ in range(micro_batches):
        _, x, y = loader.next_micro_batch()
        shape = tuple(x.shape)
        if shape not in by_shape:
            by_shape[shape] = count_flops(model, x.to(device), y.to(device))
        both, ahead, per_module = by_shape[shape]
        total, forward = total + both, forward + ahead
        for name, value in per_module.items():
            modules[name] = modules.get(name, 0) + value
        widths.append(shape[1])
    micro = data.stream.micro_batch_size
    tokens = micro_batches * micro * (run.data.block_size - 1)
    return FlopCount(run.model.variant, total / tokens, forward / tokens, {k: v / tokens for k, v in modules.items()},
                     micro_batches, micro, run.data.block_size - 1, tuple(widths), config.vocab_size)


def model_flops_per_token(variant: str, corpus: str | Path, overrides: list[str] | tuple[str, ...] = (),
                          micro_batches: int = 16) -> float:
    """FLOPs per token of bench/gpu.py's runs: SPEC's pretraining config (configs/pretrain.yaml) with
    `variant`, `corpus` and the runs' `overrides`, at world size 1 (see `flop_count`)."""
    from bench.common import spec_run_config

    run = spec_run_config(f"model.variant={variant}", f"data.corpus={corpus}", *overrides)
    return flop_count(run, micro_batches).flops_per_token


def palm_estimate(run, vocab_size: int) -> float:
    """The former estimate: 6 x all parameters + 12 x layers x width x block_size per token (PaLM's
    appendix B, nanoGPT's estimate_mfu): every position of every block, embeddings included."""
    from launcher.config import gpt_config
    from model import GPT

    with torch.device("meta"):
        parameters = GPT(gpt_config(run, vocab_size)).num_parameters()
    return 6 * parameters + 12 * run.model.n_layer * run.model.n_embd * run.data.block_size


def main(argv: list[str] | None = None) -> int:
    from bench.common import spec_run_config
    from model import VARIANTS

    parser = argparse.ArgumentParser(prog="python -m bench.mfu", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a data set in the real format (wiki.txt ...)")
    parser.add_argument("--micro-batches", type=int, default=16)
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if not (args.data / "wiki.txt").is_file():
        parser.error(f"--data: no wiki.txt in {args.data}")
    print("| variant | counted GFLOP/token | 6N + 12LdT | ratio | mean width | forward by module (GFLOP/token) |")
    print("|---|---:|---:|---:|---:|---|")
    for variant in VARIANTS:
        run = spec_run_config(f"model.variant={variant}", f"data.corpus={args.data / 'wiki.txt'}", *args.overrides)
        count = flop_count(run, args.micro_batches)
        old = palm_estimate(run, count.vocab_size)
        modules = ", ".join(f"{k} {v / 1e9:.4f}" for k, v in count.forward_by_module.items())
        print(f"| {variant} | {count.flops_per_token / 1e9:.4f} | {old / 1e9:.4f} | {count.flops_per_token / old:.2f} | "
              f"{count.mean_width:.1f} of {count.target_positions} | {modules} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
