"""Key/value cache for batched greedy decoding where rows have different lengths.

Row b's token at position p writes its key and value at slot p; a query at position p attends to
slots 0..p of its own row. Slots a padded prompt wrote beyond a row's length are overwritten by
that row's later tokens before any query can see them.
"""

from __future__ import annotations

import torch


class LayerKVCache:
    def __init__(self, batch: int, n_head: int, capacity: int, head_size: int, like: torch.Tensor) -> None:
        shape = (batch, n_head, capacity, head_size)
        self.keys = torch.zeros(shape, dtype=like.dtype, device=like.device)
        self.values = torch.zeros(shape, dtype=like.dtype, device=like.device)

    def update(
        self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Store (B, H, T, d) keys/values at per-row positions (B, T); return all keys, values, mask."""
        batch = torch.arange(k.shape[0], device=k.device)[:, None]
        self.keys[batch, :, positions] = k.transpose(1, 2)
        self.values[batch, :, positions] = v.transpose(1, 2)
        used = int(positions.max()) + 1
        slots = torch.arange(used, device=k.device)
        mask = slots[None, None, :] <= positions[:, :, None]  # (B, T, used): causal per row
        return self.keys[:, :, :used], self.values[:, :, :used], mask[:, None]


class KVCache:
    """One LayerKVCache per transformer block."""

    def __init__(self, n_layer: int, batch: int, n_head: int, capacity: int, head_size: int, like: torch.Tensor):
        self.layers = [LayerKVCache(batch, n_head, capacity, head_size, like) for _ in range(n_layer)]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop finished rows so later steps compute only the rows still decoding."""
        for layer in self.layers:
            layer.keys, layer.values = layer.keys[rows], layer.values[rows]
