"""A test fixture: the module structure of the CS224N course's GPT, to load converted state dicts strictly.

Written for these tests from the public code of the course's birth-place assignment (minGPT-based
model.py and attention.py: the 2020-21 SynthesizerAttention, the 2022-23 perceiver's
DownProjectBlock / UpProjectBlock / CausalCrossAttention, the 2023-24 rope option), not copied: it
keeps what a state dict depends on, each module's attribute names and its registered buffers,
- every attention's persistent causal `mask`: tril(ones(B, B)) viewed as (1, 1, B, B), B the
  config.block_size it is built with (the perceiver's middle blocks are built with bottleneck_dim);
- with rope, each attention's persistent `rope_cache`: (block_size, head_size / 2, 2), cos and sin
  of position x 10000^(-2i / head_size), applied to adjacent channel pairs as complex numbers;
- no pos_emb with rope; w1, w2 (head_size x block_size - 1), b2 and no query or key in the
  synthesizer; C (1 x bottleneck_dim x n_embd) in the down-projection;
and the forward of the parts the course itself defines (the perceiver's forward is the student's, so
it is left out). Only tests/test_convert.py uses it; spangpt's own model is model/.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GPTConfig:
    embd_pdrop = 0.1
    resid_pdrop = 0.1
    attn_pdrop = 0.1
    perceiver = False
    bottleneck_dim = None
    rope = False
    synthesizer = False

    def __init__(self, vocab_size, block_size, **kwargs):
        self.vocab_size = vocab_size
        self.block_size = block_size
        for key, value in kwargs.items():
            setattr(self, key, value)


def causal_mask(size: int) -> torch.Tensor:
    return torch.tril(torch.ones(size, size)).view(1, 1, size, size)


def precompute_rotary_emb(dim: int, max_positions: int) -> torch.Tensor:
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
    angles = torch.outer(torch.arange(max_positions).float(), inv_freq)
    return torch.stack((angles.cos(), angles.sin()), dim=-1)


def apply_rotary_emb(x: torch.Tensor, rope_cache: torch.Tensor) -> torch.Tensor:
    B, H, T, d = x.shape
    turn = torch.view_as_complex(rope_cache[:T].contiguous())
    pairs = torch.view_as_complex(x.float().reshape(B, H, T, d // 2, 2).contiguous())
    return torch.view_as_real(pairs * turn).flatten(3).type_as(x)


def heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def attend(scores: torch.Tensor, mask: torch.Tensor, v: torch.Tensor, drop: nn.Dropout) -> torch.Tensor:
    Tq, Tk = scores.shape[-2:]
    scores = scores.masked_fill(mask[:, :, :Tq, :Tk] == 0, -1e10)
    y = drop(F.softmax(scores, dim=-1)) @ v
    B, H, T, d = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, H * d)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.rope = config.rope
        if self.rope:
            self.register_buffer("rope_cache", precompute_rotary_emb(config.n_embd // config.n_head, config.block_size))
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.register_buffer("mask", causal_mask(config.block_size))
        self.n_head = config.n_head

    def forward(self, x):
        k, q, v = (heads(layer(x), self.n_head) for layer in (self.key, self.query, self.value))
        if self.rope:
            q, k = apply_rotary_emb(q, self.rope_cache), apply_rotary_emb(k, self.rope_cache)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        return self.resid_drop(self.proj(attend(scores, self.mask, v, self.attn_drop)))


class SynthesizerAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.w1 = nn.Linear(config.n_embd, config.n_embd)
        self.w2 = nn.Parameter(torch.zeros(config.n_embd // config.n_head, config.block_size - 1))
        self.b2 = nn.Parameter(torch.zeros(config.block_size - 1))
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.register_buffer("mask", causal_mask(config.block_size))
        self.n_head = config.n_head
        nn.init.uniform_(self.w2, -0.001, 0.001)

    def forward(self, x):
        T = x.shape[1]
        scores = F.relu(heads(self.w1(x), self.n_head)) @ self.w2[:, :T] + self.b2[:T]
        return self.resid_drop(self.proj(attend(scores, self.mask, heads(self.value(x), self.n_head), self.attn_drop)))


class CausalCrossAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.register_buffer("mask", causal_mask(config.block_size))
        self.n_head = config.n_head


def mlp(config) -> nn.Sequential:
    return nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                         nn.Linear(4 * config.n_embd, config.n_embd), nn.Dropout(config.resid_pdrop))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = SynthesizerAttention(config) if config.synthesizer else CausalSelfAttention(config)
        self.mlp = mlp(config)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class DownProjectBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.C = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, config.bottleneck_dim, config.n_embd)))
        self.attn = CausalCrossAttention(config)
        self.mlp = mlp(config)


class UpProjectBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalCrossAttention(config)
        self.mlp = mlp(config)


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if not config.rope:
            self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.embd_pdrop)
        self.rope = config.rope
        self.perceiver = config.perceiver
        if config.perceiver:
            input_block_size = config.block_size
            self.down_block = DownProjectBlock(config)
            config.block_size = config.bottleneck_dim  # the middle blocks' masks are bottleneck-sized
            self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer - 2)])
            config.block_size = input_block_size
            self.up_block = UpProjectBlock(config)
        else:
            self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.block_size = config.block_size

    def forward(self, idx):
        if self.perceiver:
            raise NotImplementedError("the course leaves the perceiver's forward to the student")
        x = self.tok_emb(idx)
        if not self.rope:
            x = x + self.pos_emb[:, : idx.shape[1], :]
        x = self.blocks(self.drop(x))
        return self.head(self.ln_f(x))
