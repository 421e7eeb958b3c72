"""SPEC's learning-rate schedule by tokens (the London baseline: tests/test_report_cli.py)."""

from __future__ import annotations

import pytest

from launcher.schedule import default_final_tokens, lr_multiplier

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
