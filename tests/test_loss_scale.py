"""fp16's loss scale at ZeRO 1-3 (launcher/loss_scale.py) moves as torch's GradScaler moves its own,
survives a checkpoint as plain numbers, and stops a run whose gradients overflow at every scale.
The launcher runs (overflow, skip counts, resume at ZeRO 0 and 3) are in tests/test_precision.py."""

from __future__ import annotations

import pytest

from launcher.config import ConfigError
from launcher.loss_scale import GROWTH_INTERVAL, ZeroLossScale, check


class ZeroOptimizer:
    """The members of a DeepSpeed ZeRO optimizer that ZeroLossScale reads and sets."""

    def __init__(self) -> None:
        self.torch_autocast_gradscaler = "DeepSpeed's GradScaler"
        self.overflow = False
        self.external_loss_scale = None

    def override_loss_scale(self, scale: float) -> None:
        self.external_loss_scale = scale


def test_the_scale_halves_on_overflow_doubles_after_clean_steps_and_reaches_the_optimizer():
    optimizer = ZeroOptimizer()
    scale = ZeroLossScale(optimizer, 2.0**16)
    assert optimizer.torch_autocast_gradscaler is None  # one scale, the optimizer's: no second unscale
    optimizer.overflow = True
    scale.after_update()
    scale.prepare()
    assert (scale.current(), scale.skipped, optimizer.external_loss_scale) == (2.0**15, 1, 2.0**15)
    optimizer.overflow = False
    for _ in range(GROWTH_INTERVAL - 1):
        scale.after_update()
    assert scale.current() == 2.0**15
    scale.after_update()
    assert (scale.current(), scale.skipped) == (2.0**16, 1)
    restored = ZeroLossScale(ZeroOptimizer(), 2.0**20)
    restored.load_state_dict(scale.state_dict())
    assert restored.state_dict() == scale.state_dict() == {"scale": 2.0**16, "growth_tracker": 0, "skipped": 1}
    assert restored.optimizer.external_loss_scale == 2.0**16


def test_a_scale_below_one_stops_the_run_with_one_line():
    optimizer = ZeroOptimizer()
    scale = ZeroLossScale(optimizer, 2.0)
    optimizer.overflow = True
    scale.after_update()
    check(scale)  # 1 is still a scale
    scale.after_update()
    with pytest.raises(ConfigError) as error:
        check(scale)
    assert str(error.value) == ("train.precision: fp16, but the loss scale fell below 1 after 2 skipped steps: "
                                "the gradients are not finite at any scale; train in bf16 or fp32")
