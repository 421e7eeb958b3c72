"""minGPT-style GPT per SPEC: embeddings, the variant's layers (model/variants.py), final LayerNorm, head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import GPTConfig
from model.kv_cache import KVCache


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.variant = config.spec
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if self.variant.learned_positions:
            self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.embd_pdrop)
        for name, module in self.variant.layers(config).items():
            self.add_module(name, module)
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        self.variant.initialise(self)

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
        return self.variant.supports_kv_cache

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
        if self.variant.learned_positions:
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
        x = self.variant.forward(self, x, positions, cache)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            # from fp32 logits: under bf16 autocast the head's product is bf16, the loss is not
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0)
        return logits, loss
