"""Transformer blocks shared by the variants: SPEC's pre-LayerNorm block and the perceiver's two projections."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from model.attention import CausalCrossAttention

if TYPE_CHECKING:
    from model.config import GPTConfig


def mlp(config: GPTConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(config.n_embd, 4 * config.n_embd),
        nn.GELU(),
        nn.Linear(4 * config.n_embd, config.n_embd),
        nn.Dropout(config.resid_pdrop),
    )


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)).

    `attention` is the variant's self-attention; only attention that supports cached decoding is
    ever given `positions` or a cache.
    """

    def __init__(self, config: GPTConfig, attention: nn.Module) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = attention
        self.mlp = mlp(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        if cache is None and positions is None:
            x = x + self.attn(self.ln1(x))
        else:
            x = x + self.attn(self.ln1(x), positions, cache)
        return x + self.mlp(self.ln2(x))


class DownProjectBlock(nn.Module):
    """Perceiver down-projection: bottleneck_dim learned queries C attend causally over the input.

    The block's one ln1 normalises both sides, queries ln1(C) and keys/values ln1(input), as the
    course's hint says ("use the layernorm layers on C") and the Perceiver normalises latents and
    inputs: out = C + attn(kv=ln1(x), q=ln1(C)), then out + mlp(ln2(out)). (Until 2026-12-01 C
    went to the queries raw.)
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.C = nn.Parameter(torch.empty(1, config.bottleneck_dim, config.n_embd))
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalCrossAttention(config)
        self.mlp = mlp(config)

    def forward(self, x_input: torch.Tensor) -> torch.Tensor:
        out = self.C + self.attn(self.ln1(x_input), self.ln1(self.C).expand(x_input.shape[0], -1, -1))
        return out + self.mlp(self.ln2(out))


class UpProjectBlock(nn.Module):
    """Perceiver up-projection: the embedded input queries the layer-normed bottleneck output."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalCrossAttention(config)
        self.mlp = mlp(config)

    def forward(self, y: torch.Tensor, x_input: torch.Tensor) -> torch.Tensor:
        out = x_input + self.attn(self.ln1(y), x_input)
        return out + self.mlp(self.ln2(out))
