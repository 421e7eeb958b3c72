"""The sharded streaming loader for pretraining.

The global stream is world-size independent: global example q is document perm_e(q mod N) of
epoch e = q div N, corrupted by the generator of (seed, e, document). Epochs follow each other
without a break, so every global batch is full. Each micro-step, rank r of W takes the m
consecutive positions `position + r*m + [0, m)`, reads only those documents, and the position
advances by W*m; gradient accumulation steps and ranks together tile each global batch exactly.
The whole loader state is one global position, which is why a resumed run continues with the
same examples at any world size whose W*m divides it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from data.corpus import DocumentCorpus
from data.corruption import corrupt_document, example_rng
from data.permutation import SeededPermutation
from data.vocab import Vocabulary


class ShardedDocumentStream:
    """An endless iterator of span-corrupted micro-batches (x, y), each (micro_batch_size, block_size-1)."""

    def __init__(
        self,
        corpus: DocumentCorpus | str | os.PathLike,
        vocab: Vocabulary,
        block_size: int,
        micro_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be positive, got {micro_batch_size}")
        self.corpus = corpus if isinstance(corpus, DocumentCorpus) else DocumentCorpus(corpus)
        self.vocab = vocab
        self.block_size = block_size
        self.micro_batch_size = micro_batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.position = 0  # global examples consumed by all ranks together
        self._permutation: SeededPermutation | None = None

    @property
    def documents_per_epoch(self) -> int:
        return len(self.corpus)

    @property
    def epoch(self) -> float:
        """Fractional epochs completed, for logging."""
        return self.position / len(self.corpus)

    @property
    def examples_per_micro_step(self) -> int:
        return self.world_size * self.micro_batch_size

    # --- the global stream -------------------------------------------------------------------
    def documents_at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(epoch, document index) of global stream positions."""
        n = len(self.corpus)
        epochs, within = np.divmod(np.asarray(positions, dtype=np.int64), n)
        documents = np.empty_like(within)
        for epoch in np.unique(epochs):
            if self._permutation is None or self._permutation_epoch != epoch:
                self._permutation = SeededPermutation(n, self.seed, int(epoch))
                self._permutation_epoch = int(epoch)
            selected = epochs == epoch
            documents[selected] = self._permutation(within[selected])
        return epochs, documents

    def examples_at(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        epochs, documents = self.documents_at(positions)
        ids = np.empty((len(positions), self.block_size), dtype=np.int64)
        for row, (epoch, document) in enumerate(zip(epochs.tolist(), documents.tolist())):
            rng = example_rng(self.seed, epoch, document)
            text, _ = corrupt_document(self.corpus.document(document), self.block_size, rng)
            ids[row] = self.vocab.encode(text)
        batch = torch.from_numpy(ids)
        return batch[:, :-1], batch[:, 1:]

    def my_positions(self) -> np.ndarray:
        start = self.position + self.rank * self.micro_batch_size
        return np.arange(start, start + self.micro_batch_size, dtype=np.int64)

    def next_micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.examples_at(self.my_positions())
        self.position += self.examples_per_micro_step
        return batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.next_micro_batch()

    # --- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "position": self.position, "documents": len(self.corpus)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["documents"] != len(self.corpus):
            raise ValueError(
                f"loader state is for a corpus of {state['documents']} documents, this one has {len(self.corpus)}"
            )
        if state["seed"] != self.seed:
            raise ValueError(f"loader state has seed {state['seed']}, this loader seed {self.seed}")
        if state["position"] % self.examples_per_micro_step:
            raise ValueError(
                f"loader position {state['position']} is not a multiple of world_size x micro_batch_size "
                f"({self.examples_per_micro_step}); resume with a global batch that divides it"
            )
        self.position = int(state["position"])
