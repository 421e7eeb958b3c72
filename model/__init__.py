"""Models: `GPT` and `GPTConfig`, the variant registry `VARIANTS` with its four variants, and batched greedy generation."""

from model.config import VARIANTS, GPTConfig, Option, Variant, register_variant
from model.gpt import GPT
from model.variants import Perceiver, Rope, Synthesizer, Vanilla  # importing them registers them

__all__ = ["GPT", "GPTConfig", "VARIANTS", "Option", "Variant", "register_variant",
           "Vanilla", "Synthesizer", "Perceiver", "Rope"]
