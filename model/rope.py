"""Rotary position embedding (Su et al. 2021): rotate each adjacent pair of a head's channels.

Pair i of a head of size d turns by position * base^(-2i/d). Positions are explicit tensors, so
one batch can hold rows at different positions (batched decoding with a key/value cache).
"""

from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    def __init__(self, head_size: int, max_positions: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float64), inv_freq)
        # Buffers, not parameters: SPEC's rope parameter count has no entry for them.
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: (B, H, T, d); positions: (T,) shared by all rows, or (B, T) per row."""
        cos, sin = self.cos[positions], self.sin[positions]  # (T, d/2) or (B, T, d/2)
        if positions.dim() == 2:
            cos, sin = cos[:, None], sin[:, None]  # broadcast over heads
        even, odd = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return rotated.flatten(-2).type_as(x)
