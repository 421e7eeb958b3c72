"""Models: `GPT` and `GPTConfig` (four attention variants), and batched greedy generation."""

from model.config import VARIANTS, GPTConfig
from model.gpt import GPT

__all__ = ["GPT", "GPTConfig", "VARIANTS"]
