"""Models: `GPT` and `GPTConfig`, the variant registry `VARIANTS`, and batched greedy generation."""

from model.config import GPTConfig
from model.gpt import GPT
from model.variants import VARIANTS, Option, Variant, register_variant

__all__ = ["GPT", "GPTConfig", "VARIANTS", "Option", "Variant", "register_variant"]
