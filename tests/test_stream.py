"""The sharded streaming loader: sharding, world-size independence, resume, lazy reading."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from data.corpus import DocumentCorpus, corpus_vocabulary
from data.prepare import prepare_corpus
from data.stream import ShardedDocumentStream
from data.vocab import Vocabulary

BLOCK = 64
GLOBAL_BATCH = 12


class RecordingCorpus(DocumentCorpus):
    """A real corpus that remembers which documents this rank read."""

    def __init__(self, path):
        super().__init__(path)
        self.read: list[int] = []

    def document(self, index: int) -> str:
        self.read.append(index)
        return super().document(index)


def make_ranks(path, vocab, world_size: int, seed: int = 7) -> list[ShardedDocumentStream]:
    micro = GLOBAL_BATCH // world_size // 2 if world_size < 3 else 2  # accumulation 2 (W=1,2) or 2 (W=3)
    return [
        ShardedDocumentStream(RecordingCorpus(path), vocab, BLOCK, micro, rank, world_size, seed)
        for rank in range(world_size)
    ]


def global_stream(ranks: list[ShardedDocumentStream], global_batches: int) -> torch.Tensor:
    """All ranks' micro-batches, put back in global order: (global_batches * GLOBAL_BATCH, BLOCK-1)."""
    per_batch = GLOBAL_BATCH // ranks[0].examples_per_micro_step
    rows = []
    for _ in range(global_batches * per_batch):
        rows.extend(rank.next_micro_batch()[0] for rank in ranks)
    return torch.cat(rows)


@pytest.fixture
def corpus(small_corpus):
    path, documents = small_corpus
    return path, corpus_vocabulary(DocumentCorpus(path)), documents


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_read_disjoint_shares_that_cover_each_global_batch(corpus, world_size):
    path, vocab, documents = corpus
    ranks = make_ranks(path, vocab, world_size)
    batches = 5
    global_stream(ranks, batches)
    reads = [rank.corpus.read for rank in ranks]
    for a in range(world_size):
        for b in range(a + 1, world_size):
            assert not set(reads[a]) & set(reads[b])
    positions = np.arange(batches * GLOBAL_BATCH)
    _, expected = ranks[0].items_at(positions)
    assert sorted(sum(reads, [])) == sorted(expected.tolist())  # exact cover, nothing read twice


def test_global_stream_is_identical_across_world_sizes(corpus):
    path, vocab, _ = corpus
    streams = [global_stream(make_ranks(path, vocab, w), 20) for w in (1, 2, 3)]  # 240 examples, > 2 epochs
    assert torch.equal(streams[0], streams[1]) and torch.equal(streams[0], streams[2])


def test_each_epoch_visits_every_document_once_in_a_new_order(corpus):
    path, vocab, documents = corpus
    stream = ShardedDocumentStream(path, vocab, BLOCK, 4, seed=3)
    n = stream.documents_per_epoch
    assert n == len(documents) == 103  # empty lines are not documents
    epochs, docs = stream.items_at(np.arange(3 * n))
    orders = [docs[epochs == e].tolist() for e in range(3)]
    assert all(sorted(order) == list(range(n)) for order in orders)
    assert orders[0] != orders[1] != orders[2]
    other_seed = ShardedDocumentStream(path, vocab, BLOCK, 4, seed=4).items_at(np.arange(n))[1]
    assert other_seed.tolist() != orders[0]


def test_examples_are_span_corruptions_of_the_right_documents(corpus):
    path, vocab, documents = corpus
    stream = ShardedDocumentStream(path, vocab, BLOCK, 8)
    _, docs = stream.items_at(np.arange(8))
    x, y = stream.next_micro_batch()
    assert x.shape == y.shape == (8, BLOCK - 1) and torch.equal(x[:, 1:], y[:, :-1])
    for row, doc in zip(x, docs):
        prefix, suffix, masked = vocab.decode(row.tolist()).rstrip("\u25a1").split("\u2047")
        assert documents[doc].startswith(prefix + masked + suffix)


@pytest.mark.parametrize("resume_world_size", [1, 2, 3])
def test_resume_mid_epoch_equals_uninterrupted(corpus, resume_world_size):
    path, vocab, _ = corpus
    uninterrupted = global_stream(make_ranks(path, vocab, 2), 12)
    first = make_ranks(path, vocab, 2)
    head = global_stream(first, 5)  # 60 examples: mid-epoch (103 documents)
    state = first[0].state_dict()
    assert all(rank.state_dict() == state for rank in first)
    resumed = make_ranks(path, vocab, resume_world_size)
    for rank in resumed:
        rank.load_state_dict(state)
    tail = global_stream(resumed, 7)
    assert torch.equal(torch.cat([head, tail]), uninterrupted)


def test_resume_position_must_fit_the_new_world_size(corpus):
    path, vocab, _ = corpus
    stream = ShardedDocumentStream(path, vocab, BLOCK, 2, rank=0, world_size=2)
    stream.next_micro_batch()  # position 4
    resumed = ShardedDocumentStream(path, vocab, BLOCK, 2, rank=0, world_size=3)
    with pytest.raises(ValueError, match="not a multiple of world_size x micro_batch_size"):
        resumed.load_state_dict(stream.state_dict())
    with pytest.raises(ValueError, match="seed"):
        ShardedDocumentStream(path, vocab, BLOCK, 2, seed=9).load_state_dict(stream.state_dict())


def test_prepared_shards_give_the_same_stream(corpus, tmp_path):
    path, vocab, _ = corpus
    prepare_corpus(path, tmp_path / "prepared", shard_bytes=2000)
    prepared = DocumentCorpus(tmp_path / "prepared")
    assert len(prepared.shards) > 3 and isinstance(prepared.offsets, np.memmap)
    assert Vocabulary.load(tmp_path / "prepared" / "vocab.json") == vocab
    a = global_stream(make_ranks(path, vocab, 2), 10)
    b = global_stream(make_ranks(tmp_path / "prepared", vocab, 3), 10)
    assert torch.equal(a, b)


def write_large_corpus(path, documents: int, length: int) -> int:
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    with open(path, "wb") as f:
        for _ in range(documents // 1000):
            block = letters[rng.integers(0, len(letters), size=(1000, length))]
            block[:, 0] = ord("x")
            block[:, -1] = ord("\n")
            f.write(block.tobytes())
    return path.stat().st_size


@pytest.mark.parametrize("prepared", [False, True])
def test_reading_is_lazy(tmp_path, prepared, corpus):
    """On a 40 MB corpus the loader's peak allocation stays a small fraction of the corpus."""
    small_path, small_vocab, _ = corpus
    ShardedDocumentStream(small_path, small_vocab, 128, 4).next_micro_batch()  # one-time imports, not measured
    source = tmp_path / "big.txt"
    size = write_large_corpus(source, documents=40_000, length=1000)
    vocab = Vocabulary(set("abcdefghijklmnopqrstuvwxyz x"))
    path = source
    if prepared:
        prepare_corpus(source, tmp_path / "prepared", shard_bytes=8_000_000)
        path = tmp_path / "prepared"
    tracemalloc.start()
    try:
        stream = ShardedDocumentStream(path, vocab, 128, micro_batch_size=64, rank=1, world_size=2)
        for _ in range(30):
            stream.next_micro_batch()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.documents_per_epoch == 40_000
    # The offset index is 8 bytes a document (320 kB here, memory-mapped when prepared).
    limit = 0.02 if not prepared else 0.01
    assert peak < limit * size, f"peak {peak} bytes for a {size}-byte corpus"
