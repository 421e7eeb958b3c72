"""Nothing a checkpoint directory holds can run code; documented services listen on localhost only."""

from __future__ import annotations

import os
import re

import torch

from conftest import CONFIGS, ROOT, pretrain_overrides
from launch import check, launch
from test_launcher_errors import one_error_line


class RunsCode:
    """A pickle that would run a shell command when unpickled."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_holding_a_code_pickle_is_refused_and_nothing_runs(world, tmp_path):
    run = tmp_path / "run"
    check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, run, "train.max_steps=2"), launcher="python"))
    planted = run / "checkpoints" / "step00000002" / "mp_rank_00_model_states.pt"
    marker = tmp_path / "code-ran"
    torch.save({"module": RunsCode(marker)}, planted)  # a complete checkpoint whose file now runs code
    result = launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, run, "train.max_steps=4"), launcher="python")
    line = one_error_line(result, str(planted), "refusing to load this checkpoint file", "system")
    assert result.returncode == 1, line
    assert not marker.exists()  # nothing executed
    assert [p.name for p in (run / "checkpoints").glob("step*")] == ["step00000002"]  # no training happened


def test_documented_tensorboard_commands_bind_localhost():
    documents = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "slurm").glob("*.sh")]
    commands = [line for doc in documents for line in doc.read_text(encoding="utf-8").splitlines()
                if re.search(r"\btensorboard\s+--logdir", line)]
    assert commands, "the README documents how to open TensorBoard"
    for command in commands:
        assert re.search(r"--host[ =](127\.0\.0\.1|localhost)\b", command), command
