"""The variant registry: every attention variant, its layers and its own model options, in one place.

A variant supplies the layers between the embeddings and the final LayerNorm, how the embedded
input flows through them, and the options only it reads (the perceiver's bottleneck_dim). The rest
of the model (embeddings, head, SPEC's initialisation, the loss) is shared in model/gpt.py. Config
validation, the sweep's grid, the report's ordering and colours and the parametrized tests all read
`VARIANTS`, so a fifth variant is one class here (or `register_variant` from a plugin or a test).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from model.attention import CausalSelfAttention, SynthesizerAttention
from model.blocks import Block, DownProjectBlock, UpProjectBlock
from model.rope import RotaryEmbedding

if TYPE_CHECKING:
    from model.config import GPTConfig
    from model.kv_cache import KVCache


@dataclass(frozen=True)
class Option:
    """A model setting that one variant reads. Without a default it must be configured (SPEC's values
    live in configs/pretrain.yaml, not in code)."""

    type: type
    help: str
    default: Any = None

    def parse(self, name: str, value: Any) -> Any:
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or isinstance(value, bool):
            raise ValueError(f"{name}: expected {'an integer' if self.type is int else 'a number'}, got {value!r}")
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


class SelfAttentionVariant(Variant):
    """A stack of n_layer blocks of causal self-attention (vanilla, rope)."""

    supports_kv_cache = True

    def attention(self, config: GPTConfig) -> nn.Module:
        return CausalSelfAttention(config)

    def layers(self, config: GPTConfig) -> dict[str, nn.Module]:
        return {"blocks": nn.ModuleList(Block(config, self.attention(config)) for _ in range(config.n_layer))}

    def forward(self, model, x, positions, cache):
        for i, block in enumerate(model.blocks):
            x = block(x, positions, None if cache is None else cache.layers[i])
        return x


class Vanilla(SelfAttentionVariant):
    name = "vanilla"
    description = "multi-head causal self-attention, learned positions"


class Rope(SelfAttentionVariant):
    name = "rope"
    description = "causal self-attention with rotary position embedding on queries and keys, no learned positions"
    options = {"rope_base": Option(float, "rotation base of the rotary embedding (Su et al. 2021)", default=10000.0)}
    learned_positions = False

    def check(self, config: GPTConfig) -> None:
        if config.head_size % 2:
            raise ValueError("rope needs an even head size (n_embd / n_head)")

    def layers(self, config: GPTConfig) -> dict[str, nn.Module]:
        rotary = RotaryEmbedding(config.head_size, config.block_size, config.rope_base)  # shared, no parameters
        return {"blocks": nn.ModuleList(Block(config, CausalSelfAttention(config, rotary)) for _ in range(config.n_layer))}


class Synthesizer(Variant):
    name = "synthesizer"
    description = "dense synthesizer: attention scores from each position alone, no query-key product"

    def context_length(self, config: GPTConfig) -> int:
        return config.block_size - 1  # SPEC: W2 has block_size - 1 columns

    def layers(self, config: GPTConfig) -> dict[str, nn.Module]:
        return {"blocks": nn.ModuleList(Block(config, SynthesizerAttention(config)) for _ in range(config.n_layer))}

    def forward(self, model, x, positions, cache):
        for block in model.blocks:
            x = block(x)
        return x

    def initialise(self, model: nn.Module) -> None:
        for block in model.blocks:
            block.attn.reset_synthesizer_parameters()


class Perceiver(Variant):
    name = "perceiver"
    description = "down-projection to a bottleneck of learned queries, n_layer - 2 blocks there, up-projection"
    options = {"bottleneck_dim": Option(int, "positions in the perceiver's bottleneck")}

    def check(self, config: GPTConfig) -> None:
        if config.n_layer < 2:
            raise ValueError("perceiver needs n_layer >= 2 (a down- and an up-projection block)")
        if config.bottleneck_dim > config.block_size:
            raise ValueError("perceiver bottleneck_dim cannot exceed block_size")

    def layers(self, config: GPTConfig) -> dict[str, nn.Module]:
        return {
            "down": DownProjectBlock(config),
            "blocks": nn.ModuleList(Block(config, CausalSelfAttention(config)) for _ in range(config.n_layer - 2)),
            "up": UpProjectBlock(config),
        }

    def forward(self, model, x, positions, cache):
        h = model.down(x)
        for block in model.blocks:
            h = block(h)
        return model.up(h, x)

    def initialise(self, model: nn.Module) -> None:
        nn.init.xavier_uniform_(model.down.C)


VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> Variant:
    """Add a variant to the registry (in registration order: the order of sweeps and reports)."""
    if not variant.name or variant.name in VARIANTS:
        raise ValueError(f"variant name {variant.name!r} is empty or already registered")
    VARIANTS[variant.name] = variant
    return variant


for _builtin in (Vanilla(), Synthesizer(), Perceiver(), Rope()):
    register_variant(_builtin)


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
