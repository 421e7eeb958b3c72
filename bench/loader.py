"""Benchmark 5: examples per second the sharded loaders deliver to one rank, on one thread.

Rank 0 of 2 takes micro-batches of 64 (half of SPEC's global batch 128), exactly as training does:
span corruption for pretraining, birth-place examples for finetuning. Compared with what one
training step consumes per rank (benchmarks 1 and 2), the ratio says how far the loader is from
being the bottleneck.
"""

from __future__ import annotations

import time

import torch

from bench.common import DataSet
from data.names import NameDataset
from data.stream import ShardedDocumentStream, ShardedExampleStream
from data.corpus import open_corpus

MICRO_BATCH = 64


def examples_per_second(stream: ShardedExampleStream, seconds: float = 3.0) -> float:
    stream.next_micro_batch()  # first call builds the epoch's permutation
    examples, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        stream.next_micro_batch()
        examples += stream.micro_batch_size
    return examples / (time.perf_counter() - start)


def pretraining_rate(data: DataSet) -> float:
    corpus, vocab = open_corpus(data.corpus)
    return examples_per_second(ShardedDocumentStream(corpus, vocab, 128, MICRO_BATCH, rank=0, world_size=2))


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
