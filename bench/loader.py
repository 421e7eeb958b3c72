"""Benchmark 5: examples per second the sharded loaders deliver to one rank.

Rank 0 of 2 takes micro-batches of 64 (half of SPEC's global batch 128), exactly as training does:
span corruption for pretraining, birth-place examples for finetuning, built in step on one thread.
Compared with what one training step consumes per rank (benchmarks 1 and 2), the ratio says how far
the loader is from being the bottleneck. The GPU input path (data.workers: worker processes a chunk
ahead, data/loader.py's WorkerLoader) is measured against the in-step path on the same stream, after
checking that both hand out the same micro-batches.
"""

from __future__ import annotations

import time

import torch

from bench.common import DataSet
from data.loader import InStepLoader, Loader, WorkerLoader
from data.names import NameDataset
from data.stream import ShardedDocumentStream, ShardedExampleStream
from data.corpus import open_corpus

MICRO_BATCH = 64


def examples_per_second(source: ShardedExampleStream | Loader, seconds: float = 3.0) -> float:
    """Examples/s a stream or a loader hands out, after its first micro-batch (the epoch's permutation,
    worker start-up)."""
    source.next_micro_batch()
    examples, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        source.next_micro_batch()
        examples += MICRO_BATCH  # every stream and loader here takes micro-batches of MICRO_BATCH
    return examples / (time.perf_counter() - start)


def pretraining_stream(data: DataSet) -> ShardedDocumentStream:
    corpus, vocab = open_corpus(data.corpus)
    return ShardedDocumentStream(corpus, vocab, 128, MICRO_BATCH, rank=0, world_size=2)


def pretraining_rate(data: DataSet) -> float:
    return examples_per_second(pretraining_stream(data))


def identical_batches(data: DataSet, workers: int, steps: int) -> int:
    """How many of the first `steps` micro-batches the worker path builds exactly as the in-step path."""
    with InStepLoader(pretraining_stream(data)) as reference, \
            WorkerLoader(pretraining_stream(data), workers, torch.device("cpu")) as ahead:
        same = 0
        for _ in range(steps):
            (p1, x1, y1), (p2, x2, y2) = reference.next_micro_batch(), ahead.next_micro_batch()
            same += p1 == p2 and torch.equal(x1, x2) and torch.equal(y1, y2)
    return same


def worker_path(data: DataSet, workers: int, steps: int = 64) -> dict[str, float]:
    """The GPU input path with `workers` processes against the in-step path, on the pretraining stream."""
    same = identical_batches(data, workers, steps)
    with InStepLoader(pretraining_stream(data)) as in_step:
        baseline = examples_per_second(in_step)
    with WorkerLoader(pretraining_stream(data), workers, torch.device("cpu")) as ahead:
        rate = examples_per_second(ahead)
    return {"workers": workers, "examples_per_second": rate, "in_step_examples_per_second": baseline,
            "identical_micro_batches": same, "compared_micro_batches": steps}


def finetuning_rate(data: DataSet) -> float:
    _, vocab = open_corpus(data.corpus)
    names = NameDataset(vocab, data.finetune.read_text(encoding="utf-8"), block_size=128, source=str(data.finetune))
    return examples_per_second(ShardedExampleStream(len(names), lambda _epoch, item: names[item], MICRO_BATCH, 0, 2))


def measure(data: DataSet) -> dict[str, float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one loader thread, as in a rank
    try:
        return {"pretraining": pretraining_rate(data), "finetuning": finetuning_rate(data)}
    finally:
        torch.set_num_threads(threads)
