"""Span corruption per SPEC: truncate, cut prefix/masked/suffix, emit `prefix⁇suffix⁇masked` + pads.

The randomness of one example is a function of (seed, epoch, document index) only, so the stream
of examples does not depend on how documents are spread over ranks, nor on what came before.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from data.errors import DataError
from data.vocab import MASK, PAD, Vocabulary, VocabularyAccess


def example_rng(seed: int, epoch: int, document: int) -> random.Random:
    """A generator private to one (seed, epoch, document): string seeds hash with SHA-512, stably."""
    return random.Random(f"spangpt:{seed}:{epoch}:{document}")


def masked_length(n: int, rng: random.Random) -> int:
    """Length of the masked span for a truncated document of n characters; mean exactly n/4.

    Uniform on 1..hi with hi = n/2 - 1 has mean n/4; for odd n, hi is floor or ceil of that with
    equal chance, which keeps the mean exact. From n = 6 on it can be shorter and longer than n/4.
    """
    half = n // 2 if rng.random() < 0.5 else (n + 1) // 2
    hi = half - 1
    if hi >= 1:
        return rng.randint(1, hi)
    return min(1, max(n - 1, 0))  # documents of 1-3 characters: one masked character if possible


def longest_truncation(block_size: int) -> int:
    """SPEC: a document is truncated to at most 7/8 of a block, leaving room for the two ⁇ and the span."""
    return int(block_size * 7 / 8)


def corrupt_document(document: str, block_size: int, rng: random.Random, truncate: bool = True) -> tuple[str, int]:
    """The padded training string (block_size characters) and the truncated length.

    1. truncate to L ~ U{4..int(block_size*7/8)}; a shorter document stays whole (skipped with
       `truncate=False`, for a caller that has drawn the truncation from `rng` itself);
    2. prefix + masked + suffix with len(masked) from `masked_length`, placed uniformly;
    3. prefix ⁇ suffix ⁇ masked, padded with □.
    """
    truncated = document[: rng.randint(4, longest_truncation(block_size))] if truncate else document
    n = len(truncated)
    span = masked_length(n, rng)
    start = rng.randint(0, n - span)
    return masked_example(truncated, start, span, block_size), n


def masked_example(truncated: str, start: int, span: int, block_size: int) -> str:
    """prefix ⁇ suffix ⁇ masked, padded with □, for the span [start, start + span) of `truncated`."""
    prefix, masked, suffix = truncated[:start], truncated[start : start + span], truncated[start + span :]
    text = prefix + MASK + suffix + MASK + masked
    return text + PAD * (block_size - len(text))


def shift_pair(ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-character prediction: x drops the last id, y the first (block_size - 1 each)."""
    t = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
    return t[:-1], t[1:]


def text_example(document: str, block_size: int, vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """The document's first block_size characters as plain text, padded: every character is a target."""
    text = document[:block_size]
    return shift_pair(vocab.encode(text + PAD * (block_size - len(text))))


class CharCorruptionDataset(VocabularyAccess, torch.utils.data.Dataset):
    """Span-corruption examples over the non-empty lines of an in-memory corpus.

    Item i is document i corrupted with the generator of (seed, epoch, i): indexing is repeatable
    within an epoch, and `set_epoch` draws fresh corruptions. For large corpora use
    `data.stream.ShardedDocumentStream`, which reads lazily and shards across ranks.
    """

    def __init__(self, text: str, block_size: int, seed: int = 0, source: str = "<corpus>") -> None:
        if block_size < 8:
            raise ValueError(f"block_size must be at least 8, got {block_size}")
        self.vocab = Vocabulary.from_text(text, source=source)
        self.documents = [line for line in text.split("\n") if line]
        if not self.documents:
            raise DataError(source, "corpus is empty (no non-empty lines)")
        self.block_size = block_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = example_rng(self.seed, self.epoch, index)
        text, _ = corrupt_document(self.documents[index], self.block_size, rng)
        return shift_pair(self.vocab.encode(text))
