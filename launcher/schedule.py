"""SPEC's learning rate by tokens seen: linear warm-up, cosine decay to 10%, then 10%.

Tokens are every target position of every example of the global batch (block_size - 1 each), so
the rate is a function of the optimizer step alone and identical at every world size. The rate of
step k uses the tokens seen once step k's batch is counted, as the reference trainer does (it
updates the rate after each step, so its first step runs at the base rate).
"""

from __future__ import annotations

import math


def lr_multiplier(tokens: int, warmup_tokens: int, final_tokens: int) -> float:
    if tokens < warmup_tokens:
        return tokens / max(1, warmup_tokens)
    progress = (tokens - warmup_tokens) / max(1, final_tokens - warmup_tokens)
    return max(0.1, 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def default_final_tokens(pretraining_documents: int, block_size: int) -> int:
    """SPEC: final_tokens = 200 x (number of pretraining documents) x block_size, for every phase."""
    return 200 * pretraining_documents * block_size

