"""minGPT-style GPT with four attention variants, per SPEC."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.attention import CausalCrossAttention, CausalSelfAttention, SynthesizerAttention
from model.config import GPTConfig
from model.kv_cache import KVCache
from model.rope import RotaryEmbedding


def mlp(config: GPTConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(config.n_embd, 4 * config.n_embd),
        nn.GELU(),
        nn.Linear(4 * config.n_embd, config.n_embd),
        nn.Dropout(config.resid_pdrop),
    )


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig, rotary: RotaryEmbedding | None = None) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        if config.variant == "synthesizer":
            self.attn: nn.Module = SynthesizerAttention(config)
        else:
            self.attn = CausalSelfAttention(config, rotary)
        self.mlp = mlp(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        if cache is None and positions is None:
            x = x + self.attn(self.ln1(x))
        else:
            x = x + self.attn(self.ln1(x), positions, cache)
        return x + self.mlp(self.ln2(x))


class DownProjectBlock(nn.Module):
    """Perceiver down-projection: bottleneck_dim learned queries C attend causally over the input."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.C = nn.Parameter(torch.empty(1, config.bottleneck_dim, config.n_embd))
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalCrossAttention(config)
        self.mlp = mlp(config)

    def forward(self, x_input: torch.Tensor) -> torch.Tensor:
        out = self.C + self.attn(self.ln1(x_input), self.C.expand(x_input.shape[0], -1, -1))
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


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        rotary = None
        if config.variant == "rope":
            rotary = RotaryEmbedding(config.head_size, config.block_size, config.rope_base)
        else:  # rope has no learned position embedding
            self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.embd_pdrop)
        if config.variant == "perceiver":
            self.down = DownProjectBlock(config)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer - 2))
            self.up = UpProjectBlock(config)
        else:
            self.blocks = nn.ModuleList(Block(config, rotary) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for module in self.modules():
            if isinstance(module, SynthesizerAttention):
                module.reset_synthesizer_parameters()
        if config.variant == "perceiver":
            nn.init.xavier_uniform_(self.down.C)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def supports_kv_cache(self) -> bool:
        """Only causal self-attention keeps past keys fixed; the others recompute every step."""
        return self.config.variant in ("vanilla", "rope")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def decayed_parameter_names(self) -> set[str]:
        """SPEC: weight decay on Linear weights only (not biases, LayerNorm, embeddings, pos_emb, C, W2)."""
        return {
            f"{name}.weight" if name else "weight"
            for name, module in self.named_modules()
            if isinstance(module, nn.Linear)
        }

    def embed(self, idx: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        x = self.tok_emb(idx)
        if self.config.variant != "rope":
            x = x + (self.pos_emb[:, : idx.shape[1]] if positions is None else self.pos_emb[0, positions])
        return self.drop(x)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) and, with targets, the cross-entropy ignoring PAD (id 0).

        `positions` (B, T) and `cache` serve batched cached decoding (vanilla and rope only).
        """
        T = idx.shape[1]
        if T > self.config.context_length:
            raise ValueError(f"input of {T} positions exceeds the model's context of {self.config.context_length}")
        if cache is not None and not self.supports_kv_cache:
            raise ValueError(f"the {self.config.variant} variant cannot decode with a key/value cache")
        x = self.embed(idx, positions)
        if self.config.variant == "perceiver":
            h = self.down(x)
            for block in self.blocks:
                h = block(h)
            x = self.up(h, x)
        else:
            for i, block in enumerate(self.blocks):
                x = block(x, positions, None if cache is None else cache.layers[i])
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0)
        return logits, loss
