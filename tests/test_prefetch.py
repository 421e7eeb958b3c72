"""The prefetching loader hands out exactly what in-step loading would, and keeps the stream's state honest."""

from __future__ import annotations

import pytest
import torch

from data.corpus import DocumentCorpus
from data.errors import DataError
from data.prefetch import InStepLoader, PrefetchingLoader
from data.stream import ShardedDocumentStream, ShardedExampleStream
from data.vocab import Vocabulary


def stream_at(path, position: int) -> ShardedDocumentStream:
    corpus = DocumentCorpus(path)
    stream = ShardedDocumentStream(corpus, Vocabulary(corpus.distinct_characters()), 64, 4, rank=1, world_size=2, seed=5)
    stream.load_state_dict({"seed": 5, "position": position, "items": len(corpus)})
    return stream


@pytest.mark.parametrize("start", [0, 96])  # from the beginning, and resumed mid-epoch
def test_prefetched_batches_equal_in_step_batches_across_epochs(small_corpus, start):
    path, documents = small_corpus
    in_step, ahead = stream_at(path, start), stream_at(path, start)
    steps = 2 * len(documents) // 8 + 3  # past two epoch boundaries
    with InStepLoader(in_step) as expected, PrefetchingLoader(ahead, depth=3) as prefetched:
        for _ in range(steps):
            (p1, x1, y1), (p2, x2, y2) = expected.next_micro_batch(), prefetched.next_micro_batch()
            assert p1 == p2 and torch.equal(x1, x2) and torch.equal(y1, y2)
            # the saved state counts batches handed out, not batches built ahead
            assert ahead.state_dict() == in_step.state_dict()
            assert ahead.epoch == in_step.epoch
    assert ahead.position == start + steps * 8


def test_a_failure_while_building_reaches_the_training_thread():
    def make_example(epoch: int, item: int):
        if item == 3:
            raise DataError("corpus.txt", "bad document", 4)
        return torch.zeros(7, dtype=torch.long), torch.zeros(7, dtype=torch.long)

    stream = ShardedExampleStream(8, make_example, micro_batch_size=2, seed=0)
    loader = PrefetchingLoader(stream, depth=2)
    with pytest.raises(DataError, match="corpus.txt:4: bad document"):
        for _ in range(8):
            loader.next_micro_batch()
    loader.close()
    assert not loader.thread.is_alive()


def test_closing_stops_the_thread_even_with_a_full_queue(small_corpus):
    path, _ = small_corpus
    loader = PrefetchingLoader(stream_at(path, 0), depth=1)
    loader.next_micro_batch()
    loader.close()
    assert not loader.thread.is_alive()
