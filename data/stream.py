"""World-size independent streams of micro-batches: the sharded loader for every phase.

The global stream: global example q is item perm_e(q mod N) of epoch e = q div N, built by
`make_example(epoch, item)`. Epochs follow each other without a break, so every global batch is
full. Each micro-step, rank r of W takes the m consecutive positions `position + r*m + [0, m)`,
builds only those items, and the position advances by W*m; gradient accumulation steps and ranks
together tile each global batch exactly. The whole state is one global position, which is why a
resumed run continues with the same examples at any world size whose W*m divides it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from data.corpus import DocumentCorpus
from data.augment import name_anchored_variant
from data.corruption import example_rng, shift_pair, text_example
from data.permutation import SeededPermutation
from data.salient import CORRUPTIONS
from data.vocab import Vocabulary

Example = tuple[torch.Tensor, torch.Tensor]


class ShardedExampleStream:
    """An endless iterator of micro-batches (x, y), each (micro_batch_size, block_size-1)."""

    def __init__(
        self,
        num_items: int,
        make_example: Callable[[int, int], Example],
        micro_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be positive, got {micro_batch_size}")
        if num_items < 1:
            raise ValueError("a stream needs at least one item")
        self.num_items = num_items
        self.make_example = make_example
        self.micro_batch_size = micro_batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.position = 0  # global examples consumed by all ranks together
        self._permutation: SeededPermutation | None = None
        self._permutation_epoch = -1

    @property
    def epoch(self) -> float:
        """Fractional epochs completed, for logging."""
        return self.position / self.num_items

    @property
    def examples_per_micro_step(self) -> int:
        return self.world_size * self.micro_batch_size

    def items_at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(epoch, item index) of global stream positions."""
        epochs, within = np.divmod(np.asarray(positions, dtype=np.int64), self.num_items)
        items = np.empty_like(within)
        for epoch in np.unique(epochs).tolist():
            if self._permutation_epoch != epoch:
                self._permutation = SeededPermutation(self.num_items, self.seed, epoch)
                self._permutation_epoch = epoch
            selected = epochs == epoch
            items[selected] = self._permutation(within[selected])
        return epochs, items

    def examples_at(self, positions: np.ndarray) -> Example:
        epochs, items = self.items_at(positions)
        pairs = [self.make_example(e, i) for e, i in zip(epochs.tolist(), items.tolist())]
        return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    def my_positions(self) -> np.ndarray:
        return self.positions_at(self.position)

    def positions_at(self, position: int) -> np.ndarray:
        """This rank's share of the micro-step that starts at global `position`."""
        start = position + self.rank * self.micro_batch_size
        return np.arange(start, start + self.micro_batch_size, dtype=np.int64)

    def next_micro_batch(self) -> Example:
        batch = self.examples_at(self.my_positions())
        self.position += self.examples_per_micro_step
        return batch

    def __iter__(self) -> Iterator[Example]:
        while True:
            yield self.next_micro_batch()

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "position": self.position, "items": self.num_items}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["items"] != self.num_items:
            raise ValueError(f"loader state is for {state['items']} items per epoch, this data has {self.num_items}")
        if state["seed"] != self.seed:
            raise ValueError(f"loader state has seed {state['seed']}, this loader seed {self.seed}")
        if state["position"] % self.examples_per_micro_step:
            raise ValueError(
                f"loader position {state['position']} is not a multiple of world_size x micro_batch_size "
                f"({self.examples_per_micro_step}); resume with a global batch that divides it"
            )
        self.position = int(state["position"])


class ShardedDocumentStream(ShardedExampleStream):
    """Pretraining: span corruptions of a lazily read corpus; corruption fixed by (seed, epoch, document).

    Knowledge-storage recipes (all off by default, SPEC's recipe being the reference): `objective`
    "text" shows a document as plain text instead of a corruption; `augment` "name_anchored" first
    rewrites it as a label-free name-anchored variant (data.augment), drawn from the same generator;
    `masking` "salient" masks a name, number or date of the document (data.salient) instead of a
    random span.

    With `questions` and `question_mix` q > 0, each example is instead, with probability q, a training
    question with its answer in the finetuning format (a knowledge-storage recipe, off by default).
    The choice and the question are drawn from a generator private to (seed, epoch, document), so the
    stream stays the same at every world size and on resume; only the questions given (the finetuning
    split) can ever enter it.
    """

    def __init__(
        self,
        corpus: DocumentCorpus | str | os.PathLike,
        vocab: Vocabulary,
        block_size: int,
        micro_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        questions: Sequence[Example] | None = None,
        question_mix: float = 0.0,
        objective: str = "span_corruption",
        augment: str = "none",
        masking: str = "random",
    ) -> None:
        if objective not in ("span_corruption", "text") or augment not in ("none", "name_anchored") or \
                masking not in CORRUPTIONS:
            raise ValueError(f"unknown objective {objective!r}, augmentation {augment!r} or masking {masking!r}")
        if not 0.0 <= question_mix < 1.0 or (question_mix > 0 and not questions):
            raise ValueError(f"question_mix {question_mix} needs 0 <= q < 1, and questions when q > 0")
        self.corpus = corpus if isinstance(corpus, DocumentCorpus) else DocumentCorpus(corpus)
        self.vocab = vocab
        self.block_size = block_size
        self.questions = questions
        self.question_mix = question_mix
        self.objective = objective
        self.augment = augment
        self.corrupt = CORRUPTIONS[masking]
        self.possessives = "'" in vocab  # a variant may write "Name's" only if the corpus has the apostrophe
        super().__init__(len(self.corpus), self.corrupted_example, micro_batch_size, rank, world_size, seed)

    @property
    def documents_per_epoch(self) -> int:
        return self.num_items

    def corrupted_example(self, epoch: int, document: int) -> Example:
        if self.question_mix:
            mix = random.Random(f"spangpt-mix:{self.seed}:{epoch}:{document}")
            if mix.random() < self.question_mix:
                return self.questions[mix.randrange(len(self.questions))]
        rng = example_rng(self.seed, epoch, document)
        source = self.corpus.document(document)
        if self.augment == "name_anchored":
            source = name_anchored_variant(source, rng, possessives=self.possessives)
        if self.objective == "text":
            return text_example(source, self.block_size, self.vocab)
        text, _ = self.corrupt(source, self.block_size, rng)
        return shift_pair(self.vocab.encode(text))
