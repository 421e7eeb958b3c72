"""GPTConfig: the shape of a model, validated once so a bad value fails before any tensor exists."""

from __future__ import annotations

from dataclasses import asdict, dataclass

VARIANTS = ("vanilla", "synthesizer", "perceiver", "rope")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    variant: str = "vanilla"
    bottleneck_dim: int = 32  # perceiver only: positions in the bottleneck
    embd_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    rope_base: float = 10000.0  # rope only

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {self.variant!r}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bottleneck_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.variant == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("rope needs an even head size (n_embd / n_head)")
        if self.variant == "perceiver" and self.n_layer < 2:
            raise ValueError("perceiver needs n_layer >= 2 (a down- and an up-projection block)")
        if self.variant == "perceiver" and self.bottleneck_dim > self.block_size:
            raise ValueError("perceiver bottleneck_dim cannot exceed block_size")
        for name in ("embd_pdrop", "resid_pdrop", "attn_pdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def context_length(self) -> int:
        """Longest input the model accepts. The synthesizer's W2 has block_size-1 columns (SPEC)."""
        return self.block_size - 1 if self.variant == "synthesizer" else self.block_size

    def to_dict(self) -> dict:
        return asdict(self)
