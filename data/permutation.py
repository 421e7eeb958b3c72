"""A seeded permutation of range(n) computed on demand in O(1) memory.

Materialising a shuffled index costs 8 bytes per document per epoch; a keyed Feistel network with
cycle walking gives a true bijection on range(n) whose value at any position is computed directly,
so a rank can find the documents of its positions without holding the epoch's order.
"""

from __future__ import annotations

import hashlib

import numpy as np

_ROUNDS = 6
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


class SeededPermutation:
    """perm[i] for i in range(n): a pseudo-random bijection fixed by (n, seed, epoch)."""

    def __init__(self, n: int, seed: int, epoch: int) -> None:
        if n < 1:
            raise ValueError("permutation of an empty range")
        self.n = n
        self.half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
        self.mask = np.uint64((1 << self.half_bits) - 1)
        digest = hashlib.sha512(f"spangpt-perm:{seed}:{epoch}".encode()).digest()
        self.keys = np.frombuffer(digest, dtype=np.uint64)[:_ROUNDS].copy()

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> np.uint64(self.half_bits), x & self.mask
        for key in self.keys:
            left, right = right, left ^ (_splitmix64(right ^ key) & self.mask)
        return (left << np.uint64(self.half_bits)) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Vectorised lookup; cycle walking keeps values inside range(n) and keeps it a bijection."""
        x = np.asarray(positions, dtype=np.uint64).copy()
        if x.size and int(x.max()) >= self.n:
            raise IndexError("position outside the permutation")
        todo = np.ones(x.shape, dtype=bool)
        while todo.any():
            x[todo] = self._feistel(x[todo])
            todo = x >= np.uint64(self.n)
        return x.astype(np.int64)
