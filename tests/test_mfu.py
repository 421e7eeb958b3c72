"""bench/mfu.py: the FLOPs per token that MFU divides by, and the peak it divides into.

The count is what each variant computes on micro-batches built as training builds them (trailing
all-PAD columns cut), per target token the trainer counts; the peak is the GPU's own, by exact name.
"""

from __future__ import annotations

import pytest
import torch

from bench.common import spec_run_config
from launcher.config import gpt_config
from bench.mfu import PEAK_TFLOPS, flop_count, model_flops_per_token, palm_estimate, peak_tflops
from model import GPT, VARIANTS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from data.synthetic import write_world

    world = tmp_path_factory.mktemp("mfu") / "world"
    write_world(world, seed=0, train=100, dev=100, test=50, places=20, overwrite=False)
    return world / "wiki.txt"


@pytest.fixture(scope="module")
def spec_counts(corpus):
    """SPEC's shape and batch (configs/pretrain.yaml): vanilla and perceiver over the same micro-batches."""
    return {variant: flop_count(spec_run_config(f"model.variant={variant}", f"data.corpus={corpus}"), 4)
            for variant in ("vanilla", "perceiver")}


def test_vanilla_counts_its_matmuls_over_the_kept_columns_per_trained_token(corpus, spec_counts):
    run = spec_run_config(f"data.corpus={corpus}")
    count = spec_counts["vanilla"]
    L, d, V, B, T = run.model.n_layer, run.model.n_embd, count.vocab_size, 128, run.data.block_size - 1
    assert (count.micro_batch_size, count.target_positions, count.micro_batches) == (B, T, 4)
    assert max(count.widths) <= T and count.mean_width < T  # the trailing all-PAD columns were cut
    # per micro-batch of width w, forward x 3 (backward: grads of inputs and of weights): the blocks'
    # 12 d^2 weights per position, the full w x w attention products (causal mask not subtracted), the head
    exact = sum(3 * (2 * 12 * d * d * L * B * w + 4 * L * B * w * w * d + 2 * B * w * d * V) for w in count.widths)
    assert count.flops_per_token == pytest.approx(exact / (4 * B * T), rel=1e-12)

    with torch.device("meta"):
        blocks = sum(p.numel() for p in GPT(gpt_config(run, V)).blocks.parameters())
    lower = 6 * blocks * count.mean_width / T  # 6N of the blocks alone, over the positions actually computed
    old = palm_estimate(run, V)  # 6N (embeddings too) + 12 L d x 128, every position
    assert lower < count.flops_per_token < old
    assert 0.7 < count.flops_per_token / old < 0.9
    # what bench/gpu.py multiplies its runs' tokens/s by: the same count for the same config
    assert model_flops_per_token("vanilla", corpus, [], micro_batches=4) == count.flops_per_token


def test_the_perceiver_is_charged_for_its_bottleneck_not_for_full_length_blocks(spec_counts):
    vanilla, perceiver = spec_counts["vanilla"], spec_counts["perceiver"]
    assert perceiver.widths == vanilla.widths  # the same micro-batches
    assert perceiver.flops_per_token < 0.6 * vanilla.flops_per_token
    assert set(perceiver.forward_by_module) == {"down", "blocks", "up", "head"}
    # its two middle blocks run on 32 slots: less than one of vanilla's four full-length blocks
    assert perceiver.forward_by_module["blocks"] < vanilla.forward_by_module["blocks"] / 4
    for count in (vanilla, perceiver):
        assert sum(count.forward_by_module.values()) == pytest.approx(count.forward_flops_per_token)
        assert count.flops_per_token == pytest.approx(3 * count.forward_flops_per_token)  # backward: 2 products each


def test_meta_counts_equal_cpu_counts_for_every_variant(corpus):
    """The count needs shapes only; on CPU it also needs SDPA's math path (CPU's fused kernel counts 0)."""
    small = ["model.n_layer=3", "model.n_embd=32", "model.n_head=4", "model.bottleneck_dim=8",
             "train.global_batch_size=8"]
    for variant in VARIANTS:
        run = spec_run_config(f"model.variant={variant}", f"data.corpus={corpus}", *small)
        meta, cpu = (flop_count(run, 2, device=device) for device in ("meta", "cpu"))
        assert meta.flops_per_token == cpu.flops_per_token > 0, variant
        assert meta.forward_by_module == cpu.forward_by_module


def test_peaks_are_looked_up_by_exact_device_name():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.5
    assert peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.5  # not the SXM part's peak
    assert peak_tflops("NVIDIA H100 NVL", "tf32") == 417.5
    assert peak_tflops("NVIDIA H200", "fp32") == 67.0
    assert peak_tflops("NVIDIA A100 80GB PCIe", "tf32") == peak_tflops("NVIDIA A100-SXM4-40GB", "tf32") == 156.0
    assert peak_tflops("Tesla V100-SXM2-16GB", "fp16") == 125.0
    assert peak_tflops("Tesla V100-SXM2-16GB", "bf16") is None and peak_tflops("Tesla T4", "tf32") is None
    for unknown in ("NVIDIA H100", "H100", "NVIDIA GeForce RTX 4090", "CPU (x86_64, 2 cores)", ""):
        assert peak_tflops(unknown, "bf16") is None, unknown
    assert peak_tflops("NVIDIA H200", "fp8") is None
    for name, table in PEAK_TFLOPS.items():
        assert set(table) == {"fp32", "tf32", "bf16", "fp16"}, name
        assert all(v is None or v >= table["fp32"] for v in table.values()), name  # tensor cores beat CUDA cores
