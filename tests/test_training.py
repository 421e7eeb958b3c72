"""Real DeepSpeed runs on gloo: ZeRO 0-3 on 2 ranks, resume, export -> finetune -> evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import CONFIGS, STEPS, TINY, pretrain_overrides
from launch import check, launch, losses, metrics

@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_each_zero_stage_trains_on_two_ranks_like_one(pretrain_runs, stage):
    two = losses(pretrain_runs[f"zero{stage}"])
    one = losses(pretrain_runs["1rank"])
    assert sorted(two) == list(range(1, STEPS + 1))
    assert sum(list(two.values())[-2:]) < sum(list(two.values())[:2]) - 0.2  # the loss falls
    # Same global batch, same micro-batches, same dropout masks: equal up to float summation order.
    for step in one:
        assert math.isclose(two[step], one[step], rel_tol=1e-4), (step, two[step], one[step])


def test_learning_rate_follows_spec_schedule_with_global_tokens(world, pretrain_runs):
    """lr(step) = base x multiplier(tokens of the global batches so far), at 1 and 2 ranks alike."""
    from launcher.schedule import lr_multiplier

    documents = len((world / "wiki.txt").read_text(encoding="utf-8").splitlines())
    final_tokens = 200 * documents * 64  # SPEC's default, block_size 64 here
    for run in ("1rank", "zero2"):
        for m in metrics(pretrain_runs[run]):
            tokens = m["step"] * 8 * 63  # global batch 8 x (block_size - 1) target positions
            assert m["train/lr"] == pytest.approx(3e-3 * lr_multiplier(tokens, 512 * 20, final_tokens), rel=1e-9)


def test_checkpoints_every_n_steps_with_client_state(pretrain_runs):
    directory = pretrain_runs["zero1"] / "checkpoints"
    tags = sorted(p.name for p in directory.iterdir() if p.is_dir())
    assert tags == ["step00000003", "step00000006", "step00000008"]
    assert all((directory / tag / "complete.json").is_file() for tag in tags)
    assert (directory / "latest").read_text() == "step00000008"
    state = torch.load(directory / "step00000006" / "mp_rank_00_model_states.pt", weights_only=False)
    assert state["step"] == 6 and state["tokens"] == 6 * 8 * 63
    assert state["loader"]["position"] == 6 * 8
    assert {"torch", "numpy", "python"} <= set(state["rng"])
    assert "vocab" not in state and "config" not in state  # what resume checks lives in complete.json
    marker = json.loads((directory / "step00000006" / "complete.json").read_text())
    assert marker["record"]["config"]["phase"] == "pretrain" and marker["record"]["config"]["model"]["n_embd"] == 32
    assert marker["record"]["vocab"][:2] == ["\u25a1", "\u2047"] and marker["zero_stage"] == 1


def test_only_rank_zero_writes(pretrain_runs):
    run = pretrain_runs["zero2"]
    assert [m["step"] for m in metrics(run)] == list(range(1, STEPS + 1))  # each step logged once
    assert len(list((run / "tensorboard").iterdir())) == 1
    assert sorted(p.name for p in (run / "export").iterdir()) == ["model.json", "model.safetensors", "vocab.json"]


def test_exports_agree_across_stages_and_world_sizes(pretrain_runs):
    reference = load_file(pretrain_runs["1rank"] / "export" / "model.safetensors")
    for stage in range(4):
        weights = load_file(pretrain_runs[f"zero{stage}"] / "export" / "model.safetensors")
        assert weights.keys() == reference.keys()
        for name, tensor in weights.items():
            assert tensor.dtype == torch.float32
            assert torch.allclose(tensor, reference[name], atol=1e-4), (stage, name)


def test_pretraining_continues_from_init_from(world, pretrain_runs, tmp_path):
    """A pretrain config with init_from starts from those weights (it once started from random ones):
    at a rate of 1e-12 two steps leave the export's weights as they were, 8 steps of 3e-3 away from the seed's."""
    start = pretrain_runs["1rank"] / "export"
    overrides = pretrain_overrides(world, tmp_path / "run", f"init_from={start}", "train.max_steps=2",
                                   "train.learning_rate=1e-12")
    check(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"))
    reference = load_file(start / "model.safetensors")
    weights = load_file(tmp_path / "run" / "export" / "model.safetensors")
    assert weights.keys() == reference.keys()
    for name, tensor in weights.items():
        assert torch.allclose(tensor, reference[name], atol=1e-6), name


@pytest.mark.parametrize("stage, resume_ranks", [(1, 2), (2, 1), (0, 1), (3, 2)])
def test_stop_and_resume_equals_uninterrupted(world, pretrain_runs, tmp_path, stage, resume_ranks):
    run = tmp_path / "run"
    first = pretrain_overrides(world, run, f"train.zero_stage={stage}", f"train.max_steps={STEPS // 2}")
    check(launch([str(CONFIGS / "pretrain.yaml")], first, nproc=2))
    assert (run / "checkpoints" / "latest").read_text().strip() == f"step{STEPS // 2:08d}"
    rest = pretrain_overrides(world, run, f"train.zero_stage={stage}")
    result = check(launch([str(CONFIGS / "pretrain.yaml")], rest, nproc=resume_ranks,
                          launcher="torchrun" if resume_ranks > 1 else "python"))
    assert f"steps {STEPS // 2} -> {STEPS} (resumed from step{STEPS // 2:08d})" in result.stdout
    resumed, uninterrupted = losses(run), losses(pretrain_runs[f"zero{stage}"])
    assert sorted(resumed) == list(range(1, STEPS + 1))  # the step count continues
    for step in range(1, STEPS + 1):
        if resume_ranks == 2:
            assert resumed[step] == uninterrupted[step], step  # same world size: bit-identical
        else:
            assert math.isclose(resumed[step], uninterrupted[step], rel_tol=1e-4), step


def test_prefetching_loader_trains_identically(world, pretrain_runs, tmp_path):
    """data.prefetch=on builds batches on a thread (the GPU default): same batches, same losses, same state."""
    run = tmp_path / "run"
    check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, run, "data.prefetch=on"), nproc=2))
    assert losses(run) == losses(pretrain_runs["zero0"])
    state = torch.load(next((run / "checkpoints").glob("step*/mp_rank_00_model_states.pt")), weights_only=False)
    assert state["loader"]["position"] == STEPS * 8  # batches trained on, not batches built ahead


def test_worker_process_loader_trains_identically(world, pretrain_runs, tmp_path):
    """data.workers=2 builds batches in worker processes (the GPU input path): same losses, same state."""
    run = tmp_path / "run"
    check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, run, "data.workers=2"), nproc=2))
    assert losses(run) == losses(pretrain_runs["zero0"])
    state = torch.load(next((run / "checkpoints").glob("step*/mp_rank_00_model_states.pt")), weights_only=False)
    assert state["loader"]["position"] == STEPS * 8


def test_compiled_model_trains_like_eager(world, tmp_path):
    """train.compile=true (torch.compile through DeepSpeed) gives the eager losses, and exports the same names."""
    runs = {}
    for compiled in (False, True):
        runs[compiled] = tmp_path / f"compile-{compiled}"
        overrides = pretrain_overrides(world, runs[compiled], "model.dropout=0", "train.max_steps=3",
                                       f"train.compile={str(compiled).lower()}")
        check(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"))
    eager, compiled = losses(runs[False]), losses(runs[True])
    assert sorted(compiled) == [1, 2, 3]
    for step in eager:
        assert math.isclose(compiled[step], eager[step], rel_tol=1e-5), step
    assert load_file(runs[True] / "export" / "model.safetensors").keys() == load_file(runs[False] / "export" / "model.safetensors").keys()


def evaluate(world: Path, export: Path, run_dir: Path, nproc: int, questions: str = "birth_dev.tsv"):
    overrides = [f"run_dir={run_dir}", f"init_from={export}", f"eval.questions={world / questions}", *TINY]
    return launch([str(CONFIGS / "evaluate.yaml")], overrides, nproc=nproc,
                  launcher="torchrun" if nproc > 1 else "python")


def test_finetune_from_export_writes_predictions_and_accuracy(finetuned):
    import json

    predictions = (finetuned / "predictions.txt").read_text(encoding="utf-8").splitlines()
    assert len(predictions) == 16
    accuracy = json.loads((finetuned / "accuracy.json").read_text(encoding="utf-8"))
    assert accuracy["total"] == 16 and accuracy["accuracy"] == accuracy["correct"] / 16
    assert len(losses(finetuned)) == math.ceil(2 * 60 / 16)


def test_evaluation_is_identical_on_one_and_two_ranks(world, finetuned, tmp_path):
    one = check(evaluate(world, finetuned / "export", tmp_path / "one", 1))
    two = check(evaluate(world, finetuned / "export", tmp_path / "two", 2))
    assert (tmp_path / "one" / "predictions.txt").read_text() == (tmp_path / "two" / "predictions.txt").read_text()
    assert (tmp_path / "two" / "predictions.txt").read_text() == (finetuned / "predictions.txt").read_text()
    assert (tmp_path / "one" / "accuracy.json").read_text() == (tmp_path / "two" / "accuracy.json").read_text()
    line = [l for l in two.stdout.splitlines() if l.startswith("Correct: ")]
    assert len(line) == 1 and line[0].split("  ")[0] == [l for l in one.stdout.splitlines() if l.startswith("Correct")][0].split("  ")[0]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "accuracy.json", "config.yaml", "metrics.jsonl", "predictions.txt", "run.json", "tensorboard"]


def test_question_file_without_answers(world, finetuned, tmp_path):
    result = check(evaluate(world, finetuned / "export", tmp_path / "run", 2, "birth_test_inputs.tsv"))
    assert "No targets in" in result.stdout and "wrote 8 predictions" in result.stdout
    assert len((tmp_path / "run" / "predictions.txt").read_text().splitlines()) == 8
    assert not (tmp_path / "run" / "accuracy.json").exists()


def test_tensorboard_events_hold_the_run(finetuned):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(finetuned / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/tokens_per_second", "train/epoch", "eval/accuracy"):
        assert tag in scalars, tag
    assert len(events.Scalars("train/loss")) == math.ceil(2 * 60 / 16)
    assert all(math.isfinite(e.value) and e.value > 0 for e in events.Scalars("train/grad_norm"))
    assert "eval/samples/text_summary" in events.Tags()["tensors"]
    text = events.Tensors("eval/samples/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "Where was" in text and "| question | prediction | answer |" in text
