"""Model configs for tests: SPEC's shape read from configs/pretrain.yaml (where it lives), and small ones."""

from __future__ import annotations

from pathlib import Path

from launcher.config import gpt_config, load_config
from model import GPTConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def spec_config(variant: str, vocab_size: int = 256) -> GPTConfig:
    """SPEC's model for `variant` over a vocabulary of `vocab_size` (the real corpus has 256 ids)."""
    return gpt_config(load_config(CONFIGS / "pretrain.yaml", [f"model.variant={variant}"]), vocab_size)


def small_config(variant: str = "vanilla", dropout: float = 0.1, **shape) -> GPTConfig:
    """A model of the given shape; settings of other variants (bottleneck_dim) are ignored, as in a YAML model section."""
    return GPTConfig.from_dict({"variant": variant, "embd_pdrop": dropout, "resid_pdrop": dropout, "attn_pdrop": dropout, **shape})
