"""GPTConfig: the shape of a model, validated once so a bad value fails before any tensor exists.

No field has a default: SPEC's shape lives in configs/pretrain.yaml, and every model is built from
a config (or an export's model.json) that states it. Variant-specific settings are `options`,
declared by the variant in the registry (model/variants.py) and read as attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model.variants import Variant, variant_named, variant_options

SHARED_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "variant",
                 "embd_pdrop", "resid_pdrop", "attn_pdrop")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    variant: str
    embd_pdrop: float
    resid_pdrop: float
    attn_pdrop: float
    options: dict[str, Any] = field(default_factory=dict)  # the variant's own settings, e.g. bottleneck_dim

    def __post_init__(self) -> None:
        spec = variant_named(self.variant)
        object.__setattr__(self, "options", variant_options(self.variant, self.options))
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for name in ("embd_pdrop", "resid_pdrop", "attn_pdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        spec.check(self)

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"{type(self).__name__} of the {self.__dict__.get('variant')} variant has no {name!r}")

    @property
    def spec(self) -> Variant:
        return variant_named(self.variant)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def context_length(self) -> int:
        """Longest input the model accepts (the synthesizer's is block_size - 1)."""
        return self.spec.context_length(self)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> "GPTConfig":
        """From a flat mapping (model.json, or a run config's model settings); settings of other
        variants are ignored, unknown ones are an error."""
        missing = [name for name in SHARED_FIELDS if name not in settings]
        if missing:
            raise ValueError(f"{missing[0]}: missing")
        shared = {name: settings[name] for name in SHARED_FIELDS}
        return cls(**shared, options={k: v for k, v in settings.items() if k not in SHARED_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in SHARED_FIELDS}, **self.options}
