"""The reference configs on the real data: SPEC's model for a few steps per phase, on 2 ranks."""

from __future__ import annotations

import json

from conftest import CONFIGS
from launch import check, launch, losses


def test_reference_pipeline_runs_on_the_real_data(real_data, tmp_path):
    runs = tmp_path / "runs"
    pretrain = check(launch([str(CONFIGS / "pretrain.yaml")], [
        f"run_dir={runs / 'pretrain'}", f"data.corpus={real_data / 'wiki.txt'}", "train.max_steps=2", "train.log_every=1",
    ], nproc=2))
    assert "global batch 128 = 2 ranks x 64 x 1 accumulation, steps 0 -> 2" in pretrain.stdout
    assert len(losses(runs / "pretrain")) == 2
    model = json.loads((runs / "pretrain" / "export" / "model.json").read_text())
    assert model["model"]["vocab_size"] == 256 and model["pretraining_documents"] == 2937
    finetune = check(launch([str(CONFIGS / "finetune.yaml")], [
        f"run_dir={runs / 'finetune'}", f"init_from={runs / 'pretrain' / 'export'}",
        f"data.finetune={real_data / 'birth_places_train.tsv'}", f"eval.questions={real_data / 'birth_dev.tsv'}",
        "train.max_steps=1",
    ], nproc=2))
    assert "global batch 256 = 2 ranks x 128 x 1 accumulation, steps 0 -> 1" in finetune.stdout
    accuracy = json.loads((runs / "finetune" / "accuracy.json").read_text())
    assert accuracy["total"] == 500
    assert len((runs / "finetune" / "predictions.txt").read_text(encoding="utf-8").splitlines()) == 500
    test_inputs = check(launch([str(CONFIGS / "evaluate.yaml")], [
        f"run_dir={runs / 'test'}", f"init_from={runs / 'finetune' / 'export'}",
        f"eval.questions={real_data / 'birth_test_inputs.tsv'}",
    ], nproc=2))
    assert "No targets in" in test_inputs.stdout and "wrote 437 predictions" in test_inputs.stdout
