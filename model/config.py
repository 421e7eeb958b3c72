"""GPTConfig, the shape of a model, and VARIANTS, the registry of the variants a shape may name.

GPTConfig is validated once, so a bad value fails before any tensor exists. No field has a default:
SPEC's shape lives in configs/pretrain.yaml, and every model is built from a config (or an export's
model.json) that states it. Variant-specific settings are `options`, declared by the variant and
read as attributes. The registry lives here, beside the shape it validates; the variants themselves
(model/variants.py) build on the layers and register themselves when the `model` package loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from model.kv_cache import KVCache

@dataclass(frozen=True)
class Option:
    """A model setting that one variant reads. Without a default it must be configured (SPEC's values
    live in configs/pretrain.yaml, not in code)."""

    type: type
    help: str
    default: Any = None

    def parse(self, name: str, value: Any) -> Any:
        """The value in the option's type, read as leniently as the config's own fields: "1e4" (YAML
        reads that as text) is a number, 32.0 an integer; True, "wide" or 2.5 for an integer are errors."""
        parsed = None if isinstance(value, bool) else value
        if isinstance(value, str):
            try:
                parsed = float(value)
            except ValueError:
                parsed = None
        if self.type is int and isinstance(parsed, float):
            parsed = int(parsed) if parsed.is_integer() else None
        elif self.type is float and isinstance(parsed, int):
            parsed = float(parsed)
        if not isinstance(parsed, self.type):
            raise ValueError(f"{name}: expected {'an integer' if self.type is int else 'a number'}, got {value!r}")
        value = parsed
        if value <= 0:
            raise ValueError(f"{name}: must be positive, got {value!r}")
        return value


class Variant:
    """One attention variant. Subclasses set the class attributes and implement `layers` and `forward`."""

    name: str = ""
    description: str = ""
    options: Mapping[str, Option] = {}
    learned_positions: bool = True  # a learned (1, block_size, n_embd) position embedding is added to the input
    supports_kv_cache: bool = False  # decoding may keep past keys and values (causal self-attention only)

    def check(self, config: GPTConfig) -> None:
        """Raise ValueError naming the setting when the shape cannot build this variant."""

    def context_length(self, config: GPTConfig) -> int:
        return config.block_size

    def layers(self, config: GPTConfig) -> dict[str, nn.Module]:
        """The variant's modules, registered on the model under these names in this order (the order
        fixes the initialisation's random draws, and the names are the checkpoint's keys)."""
        raise NotImplementedError

    def forward(self, model: nn.Module, x: torch.Tensor, positions: torch.Tensor | None,
                cache: KVCache | None) -> torch.Tensor:
        raise NotImplementedError

    def initialise(self, model: nn.Module) -> None:
        """Initialisation beyond SPEC's shared rule (normal(0, 0.02) Linear/Embedding, zero biases)."""


VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> Variant:
    """Add a variant to the registry (in registration order: the order of sweeps and reports)."""
    if not variant.name or variant.name in VARIANTS:
        raise ValueError(f"variant name {variant.name!r} is empty or already registered")
    VARIANTS[variant.name] = variant
    return variant


def variant_named(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {name!r}") from None


def declared_options() -> dict[str, Option]:
    """Every registered variant's options by name (the first declaration of a shared name wins)."""
    declared: dict[str, Option] = {}
    for variant in VARIANTS.values():
        for name, option in variant.options.items():
            declared.setdefault(name, option)
    return declared


def variant_options(variant: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen variant's options from a flat mapping of model settings, defaults filled in.

    One YAML model section (and an older model.json) may carry every variant's settings; each is
    checked against the variant that declares it, and the run keeps its own variant's. A setting
    that no variant declares is an error, as is a required option left out.
    """
    chosen = variant_named(variant)
    declared = declared_options()
    for name, value in settings.items():
        if name not in declared:
            raise ValueError(f"{name}: not a setting of any variant (known: {', '.join(sorted(declared))})")
        if value is not None:
            (chosen.options.get(name) or declared[name]).parse(name, value)
    options = {}
    for name, option in chosen.options.items():
        if settings.get(name) is not None:
            options[name] = option.parse(name, settings[name])
        elif option.default is not None:
            options[name] = option.default
        else:
            raise ValueError(f"{name}: required by the {variant} variant ({option.help})")
    return options


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
