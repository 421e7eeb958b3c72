"""Benchmark 4: bytes of parameters, gradients and optimizer state per rank at ZeRO stages 0-3.

Read from the engine, not estimated: `python -m torch.distributed.run --nproc_per_node 2
-m bench.zero_memory STAGE` builds spangpt's engine (launcher.engine.build_engine) for
SPEC's model, runs one optimizer step of two accumulated micro-batches, then the forward and
backward of the next micro-batch, and stops there: every kind of state now exists, and gradients
are held between micro-batches as each stage holds them. It then walks the tensors the engine
owns (module parameters and their gradients, ZeRO partitions, the optimizer's state), counts each
underlying storage once, and prints the largest rank's bytes per kind as a JSON line. Every
precision keeps fp32 weights, gradients and optimizer state (launcher/precision.py), so the stage
alone decides the bytes.
"""

from __future__ import annotations

import gc
import json
import sys
from collections import Counter

import torch

from bench.common import spec_model_config, spec_run_config
from launcher.distributed import barrier, detect_context, prepare_environment, start, stop
from launcher.engine import build_engine
from model import GPT

KINDS = ("parameters", "gradients", "optimizer state", "other")


def kind_of(path: str) -> str:
    """Which state a tensor is, from where the engine keeps it (ZeRO's fp32 master copy is optimizer state)."""
    if path.startswith("optimizer.state"):
        return "optimizer state"
    if "grad" in path:
        return "gradients"
    if "fp32" in path:
        return "optimizer state"
    if path.startswith("param"):
        return "parameters"
    return "other"


class StorageCensus:
    """Bytes per kind, each storage counted once under the first path that reaches it."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.bytes: Counter[str] = Counter()

    def visit(self, obj, path: str, depth: int = 0) -> None:
        if isinstance(obj, torch.Tensor):
            self.count(obj, path)
            if obj.grad is not None:
                self.count(obj.grad, path + ".grad")
        elif depth < 4 and isinstance(obj, dict):
            for key, value in obj.items():
                self.visit(value, f"{path}[{key if isinstance(key, (str, int)) else '.'}]", depth + 1)
        elif depth < 4 and isinstance(obj, (list, tuple)):
            for value in obj:
                self.visit(value, path, depth + 1)

    def count(self, tensor: torch.Tensor, path: str) -> None:
        storage = tensor.untyped_storage()
        if storage.nbytes() and storage.data_ptr() not in self.seen:
            self.seen.add(storage.data_ptr())
            self.bytes[kind_of(path)] += storage.nbytes()


def census(engine) -> Counter[str]:
    result = StorageCensus()
    for parameter in engine.module.parameters():
        result.visit(parameter, "param")
        if hasattr(parameter, "ds_tensor"):  # ZeRO-3's partition of this parameter
            result.visit(parameter.ds_tensor, "param.partition")
    zero = engine.optimizer
    inner = getattr(zero, "optimizer", zero)
    for state in inner.state.values():
        result.visit(state, "optimizer.state")
    for name, value in vars(zero).items():
        result.visit(value, name)
    return result.bytes


def measure(stage: int, context, device: torch.device) -> Counter[str]:
    """Build, train to the measuring point, count. The engine dies with this frame, before the
    process group does (the other order aborts the process at exit)."""
    torch.manual_seed(0)
    model = GPT(spec_model_config(256))
    train = spec_run_config(f"train.global_batch_size={2 * context.world_size}", "train.micro_batch_size=1",
                            f"train.zero_stage={stage}").train
    engine = build_engine(model, train, context, device)
    generator = torch.Generator().manual_seed(context.rank)
    for micro_batch in range(3):  # one optimizer step (2 micro-batches), then the first micro-batch of the next
        x = torch.randint(1, 256, (1, 127), generator=generator).to(device)
        _, loss = engine(x, x)
        engine.backward(loss)
        if micro_batch < 2:
            engine.step()
    return census(engine)


def main(stage: int) -> None:
    context = detect_context()
    prepare_environment(context)
    device = start(context, "auto", 5)
    counts = measure(stage, context, device)
    gc.collect()  # DeepSpeed's engine sits in reference cycles: free it now, not at interpreter exit
    gathered: list = [None] * context.world_size
    torch.distributed.all_gather_object(gathered, dict(counts))
    if context.is_main:
        worst = {kind: max(c.get(kind, 0) for c in gathered) for kind in KINDS}
        print(json.dumps({"stage": stage, "ranks": context.world_size, "bytes": worst}))
    barrier()  # leave together: a rank tearing down gloo while its peer still talks aborts at exit
    stop()


if __name__ == "__main__":
    main(int(sys.argv[1]))
