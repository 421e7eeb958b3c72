"""Training micro-batches: padding cut without changing the math; prefetching equal to in-step loading."""

from __future__ import annotations

import pytest
import torch

from data.corpus import DocumentCorpus
from data.errors import DataError
from data.loader import InStepLoader, PrefetchingLoader, WorkerLoader, trim_trailing_padding
from data.stream import ShardedDocumentStream, ShardedExampleStream
from data.vocab import Vocabulary
from model import GPT
from models import small_config


def test_trimming_cuts_columns_whose_targets_are_all_padding():
    y = torch.tensor([[5, 6, 0, 0, 0, 0], [5, 0, 7, 8, 0, 0]])
    x = torch.arange(12).view(2, 6)
    tx, ty = trim_trailing_padding(x, y)
    assert torch.equal(ty, y[:, :4]) and torch.equal(tx, x[:, :4])
    assert trim_trailing_padding(x, torch.zeros_like(y))[1].shape == (2, 1)  # never empty


@pytest.mark.parametrize("variant", ["vanilla", "synthesizer", "perceiver", "rope"])
def test_trimmed_batches_give_the_loss_and_gradients_of_full_ones(variant):
    """Causal attention and PAD-ignoring loss: the cut columns contribute nothing, for every variant."""
    torch.manual_seed(0)
    config = small_config(variant, dropout=0.0, vocab_size=40, block_size=64, n_layer=4, n_head=4, n_embd=32, bottleneck_dim=8)
    model = GPT(config)
    x = torch.randint(2, 40, (6, 63))
    y = torch.randint(2, 40, (6, 63))
    for row, length in enumerate([5, 12, 20, 3, 17, 9]):  # real targets end early, as in SPEC's examples
        y[row, length:] = 0
    results = []
    for batch in ((x, y), trim_trailing_padding(x, y)):
        model.zero_grad()
        _, loss = model(*batch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (full_loss, full_grads), (trimmed_loss, trimmed_grads) = results
    assert trim_trailing_padding(x, y)[0].shape[1] == 20
    assert torch.allclose(trimmed_loss, full_loss, rtol=1e-6)
    for name, grad in full_grads.items():
        other = trimmed_grads.get(name, torch.zeros_like(grad))
        assert torch.allclose(other, grad, atol=1e-7, rtol=1e-5), name


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


@pytest.mark.parametrize("start", [0, 96])
def test_worker_processes_build_the_in_step_batches_across_epochs(small_corpus, start):
    """data.workers: the same micro-batches, in the same order, from processes a chunk ahead."""
    path, documents = small_corpus
    in_step, ahead = stream_at(path, start), stream_at(path, start)
    steps = 2 * len(documents) // 8 + 3  # past two epoch boundaries, and across chunks of 5 micro-steps
    with InStepLoader(in_step) as expected, WorkerLoader(ahead, 2, torch.device("cpu"), steps_per_chunk=5) as workers:
        for _ in range(steps):
            (p1, x1, y1), (p2, x2, y2) = expected.next_micro_batch(), workers.next_micro_batch()
            assert p1 == p2 and torch.equal(x1, x2) and torch.equal(y1, y2)
            assert ahead.state_dict() == in_step.state_dict()  # batches handed out, not built ahead
    assert ahead.position == start + steps * 8


def test_a_data_error_in_a_worker_process_reaches_training_as_itself(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"first document\nsecond \xff document\nthird document\n")
    stream = ShardedDocumentStream(DocumentCorpus(corpus), Vocabulary(set("firstdocumenhw ")), 16, 3, seed=0)
    with WorkerLoader(stream, 1, torch.device("cpu"), steps_per_chunk=2) as workers:
        with pytest.raises(DataError, match="corpus.txt:2: not valid UTF-8"):
            workers.next_micro_batch()
