"""SPEC's learning-rate schedule by tokens (the London baseline: tests/test_report_cli.py)."""

from __future__ import annotations

import pytest

from launcher.config import ConfigError, load_config
from launcher.schedule import default_final_tokens, lr_multiplier
from launcher.trainer import plan

from conftest import CONFIGS

WARMUP, FINAL = 512 * 20, 200 * 2937 * 128


def test_linear_warmup_then_cosine_to_ten_percent_then_flat():
    assert lr_multiplier(0, WARMUP, FINAL) == 0.0
    assert lr_multiplier(WARMUP // 2, WARMUP, FINAL) == pytest.approx(0.5)
    assert lr_multiplier(WARMUP, WARMUP, FINAL) == pytest.approx(1.0)
    middle = (WARMUP + FINAL) // 2
    assert lr_multiplier(middle, WARMUP, FINAL) == pytest.approx(0.5, abs=1e-6)
    assert lr_multiplier(FINAL, WARMUP, FINAL) == pytest.approx(0.1)
    assert lr_multiplier(3 * FINAL, WARMUP, FINAL) == pytest.approx(0.1)
    values = [lr_multiplier(t, WARMUP, FINAL) for t in range(WARMUP, FINAL, FINAL // 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay


def test_final_tokens_default_follows_spec():
    assert default_final_tokens(2937, 128) == FINAL


def test_final_tokens_run_ends_the_decay_with_the_runs_last_step():
    """`train.final_tokens: run`: 10 epochs of 3,200 examples at batch 16 are 2,000 steps of 16 x 79 tokens,
    and the rate reaches its 10% floor within them, for any number of examples."""
    def final(final_tokens, epochs: float, items: int, batch: int, *extra: str) -> int:
        train = load_config(CONFIGS / "finetune.yaml", [f"train.final_tokens={final_tokens}", f"train.epochs={epochs}",
                                                        f"train.global_batch_size={batch}", *extra]).train
        return plan(train, 80, items, 2937).final_tokens

    assert final("run", 10, 3200, 16) == 2000 * 16 * 79
    assert lr_multiplier(2000 * 16 * 79, 0, 2000 * 16 * 79) == pytest.approx(0.1)
    assert final("run", 10, 4000, 16) == 2500 * 16 * 79  # the real 2,000 questions
    assert final("run", 2.5, 100, 32) == 8 * 32 * 79  # a last partial batch counts
    assert final("run", 10, 3200, 16, "train.max_steps=5") == 2000 * 16 * 79  # a rehearsal follows the full curve
    assert final("null", 10, 3200, 16) == default_final_tokens(2937, 80)
    assert final(12345, 10, 3200, 16) == 12345


def test_final_tokens_accepts_a_count_or_run_and_nothing_else():
    assert load_config(CONFIGS / "finetune.yaml", ["train.final_tokens=run"]).train.final_tokens == "run"
    assert load_config(CONFIGS / "finetune.yaml", ["train.final_tokens=5000"]).train.final_tokens == 5000
    for bad in ("end", "0"):
        with pytest.raises(ConfigError, match=r"train.final_tokens"):
            load_config(CONFIGS / "finetune.yaml", [f"train.final_tokens={bad}"])
