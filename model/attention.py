"""The attention layers of the four variants. All are causal: position t sees inputs 0..t only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from model.kv_cache import LayerKVCache
from model.rope import RotaryEmbedding

if TYPE_CHECKING:
    from model.config import GPTConfig


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, H, T, d)


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    B, H, T, d = y.shape
    return y.transpose(1, 2).reshape(B, T, H * d)


class QueryKeyValueAttention(nn.Module):
    """SPEC's separate key, query and value Linear(n_embd, n_embd) and the output projection."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.attn_pdrop = config.attn_pdrop
        self.n_head = config.n_head


class CausalSelfAttention(QueryKeyValueAttention):
    """Vanilla multi-head self-attention through SDPA; with `rotary`, the rope variant."""

    def __init__(self, config: GPTConfig, rotary: RotaryEmbedding | None = None) -> None:
        super().__init__(config)
        self.rotary = rotary

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor | None = None, cache: LayerKVCache | None = None
    ) -> torch.Tensor:
        q, k, v = (split_heads(layer(x), self.n_head) for layer in (self.query, self.key, self.value))
        if self.rotary is not None:
            if positions is None:
                positions = torch.arange(x.shape[1], device=x.device)
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        if cache is None:
            dropout = self.attn_pdrop if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            k, v, mask = cache.update(k, v, positions)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.resid_drop(self.proj(merge_heads(y)))


class SynthesizerAttention(nn.Module):
    """Dense synthesizer (Tay et al. 2020): scores come from each position alone, no query or key.

    Per head: scores = ReLU(x W1 + b1) W2 + b2, W2 and b2 cut to the first T columns, then the
    causal mask, softmax and dropout, times a value projection, then the output projection.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        columns = config.block_size - 1
        self.w1 = nn.Linear(config.n_embd, config.n_embd)
        self.w2 = nn.Parameter(torch.empty(config.head_size, columns))
        self.b2 = nn.Parameter(torch.zeros(columns))
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.n_head = config.n_head
        self.register_buffer("causal", torch.ones(columns, columns, dtype=torch.bool).tril(), persistent=False)

    def reset_synthesizer_parameters(self) -> None:
        nn.init.uniform_(self.w2, -0.001, 0.001)  # SPEC: W2 uniform(-0.001, 0.001)
        nn.init.zeros_(self.b2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        hidden = split_heads(F.relu(self.w1(x)), self.n_head)  # (B, H, T, d)
        scores = hidden @ self.w2[:, :T] + self.b2[:T]  # (B, H, T, T)
        scores = scores.masked_fill(~self.causal[:T, :T], float("-inf"))
        weights = self.attn_drop(F.softmax(scores.float(), dim=-1))  # fp32 even under bf16 autocast
        y = weights @ split_heads(self.value(x), self.n_head)
        return self.resid_drop(self.proj(merge_heads(y)))


class CausalCrossAttention(QueryKeyValueAttention):
    """Queries from one sequence, keys and values from another (the perceiver's projections).

    SPEC's mask is the (T_query x T_key) corner of the block_size causal mask: query i may see
    keys 0..i. We take the corner at row 0 (tril[:Tq, :Tk]); the corner at the bottom row would let
    the down-projection's slot 0 see inputs up to block_size-T_query and break causality.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        size = config.block_size
        self.register_buffer("causal", torch.ones(size, size, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x_kv: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.query(x_q), self.n_head)
        k = split_heads(self.key(x_kv), self.n_head)
        v = split_heads(self.value(x_kv), self.n_head)
        mask = self.causal[: q.shape[2], : k.shape[2]]
        dropout = self.attn_pdrop if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.resid_drop(self.proj(merge_heads(y)))
