"""The four attention variants of the experiment, registered in `model.VARIANTS` (model/config.py).

A variant supplies the layers between the embeddings and the final LayerNorm, how the embedded
input flows through them, and the options only it reads (the perceiver's bottleneck_dim). The rest
of the model (embeddings, head, SPEC's initialisation, the loss) is shared in model/gpt.py. Config
validation, the sweep's grid, the report's ordering and colours and the parametrized tests all read
the registry, so a fifth variant is one class here, registered at the end. (`register_variant`
also works in-process, as tests/test_variant_registry.py does; but every training run is a fresh
process that knows only what importing `model` registers, so a variant to train with lives here.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from model.attention import CausalSelfAttention, SynthesizerAttention
from model.blocks import Block, DownProjectBlock, UpProjectBlock
from model.config import Option, Variant, register_variant
from model.rope import RotaryEmbedding

if TYPE_CHECKING:
    from model.config import GPTConfig


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
            raise ValueError(f"n_embd: rope needs an even head size (n_embd / n_head = {config.n_embd} / {config.n_head})")

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
            raise ValueError("n_layer: perceiver needs n_layer >= 2 (a down- and an up-projection block)")
        if config.bottleneck_dim > config.block_size:
            raise ValueError(f"bottleneck_dim: {config.bottleneck_dim} exceeds block_size ({config.block_size}), the perceiver's limit")

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


for _builtin in (Vanilla(), Synthesizer(), Perceiver(), Rope()):
    register_variant(_builtin)
