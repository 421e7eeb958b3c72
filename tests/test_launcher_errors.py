"""Bad configs and inputs end a run with one clear line, a non-zero exit and no output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from data.errors import DataError
from launcher.export import read_export

from launch import ROOT, TRAIN, check, launch
from launcher.distributed import detect_context, free_port
from conftest import CONFIGS, TINY, pretrain_overrides


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exactly one error line from our ranks (rank 0's); torchrun adds its own failure report after it."""
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    if "torch.distributed.elastic" not in result.stderr:  # without torchrun: nothing but our line
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "override, fragments, code",
    [
        ("train.zero_stag=1", ("pretrain.yaml: train.zero_stag: unknown key",), 2),
        ("train.zero_stage=7", ("train.zero_stage: Input should be 0, 1, 2 or 3",), 2),
        ("train.precision=fp64", ("train.precision",), 2),
    ],
)
def test_bad_config(tmp_path, override, fragments, code):
    result = launch([str(CONFIGS / "pretrain.yaml")], [f"run_dir={tmp_path / 'run'}", override], nproc=2)
    one_error_line(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_missing_corpus_file(tmp_path):
    result = launch([str(CONFIGS / "pretrain.yaml")], [f"run_dir={tmp_path / 'run'}", f"data.corpus={tmp_path / 'none.txt'}"],
                    launcher="python")
    assert result.returncode == 1
    one_error_line(result, "none.txt: corpus not found")
    assert not (tmp_path / "run").exists()


def test_global_batch_not_divisible_by_world_size(world, tmp_path):
    overrides = pretrain_overrides(world, tmp_path / "run", "train.micro_batch_size=3")
    one_error_line(launch([str(CONFIGS / "pretrain.yaml")], overrides, nproc=2),
                   "train.global_batch_size: 8 is not divisible by world size x train.micro_batch_size (2 x 3)")
    assert not (tmp_path / "run").exists()


def test_export_whose_vocabulary_does_not_fit_the_questions(world, finetuned, tmp_path):
    questions = tmp_path / "questions.tsv"
    fine = (world / "birth_dev.tsv").read_text(encoding="utf-8").splitlines()[0]
    questions.write_text(f"{fine}\nWhere was Zoë born?\tQuébec\n", encoding="utf-8")
    overrides = [f"run_dir={tmp_path / 'run'}", f"init_from={finetuned / 'export'}", f"eval.questions={questions}", *TINY]
    one_error_line(launch([str(CONFIGS / "evaluate.yaml")], overrides, nproc=2),
                   "questions.tsv:2: character 'ë' (U+00EB) is not in the vocabulary")
    assert not (tmp_path / "run").exists()  # nothing written: no predictions, no accuracy


def test_init_from_with_another_variant(world, finetuned, tmp_path):
    overrides = [f"run_dir={tmp_path / 'run'}", f"init_from={finetuned / 'export'}",
                 f"data.finetune={world / 'birth_places_train.tsv'}", *TINY, "model.variant=rope"]
    one_error_line(launch([str(CONFIGS / "finetune.yaml")], overrides, launcher="python"),
                   "init_from:", "variant='vanilla' but model.variant is 'rope'")


def test_init_from_with_another_vocabulary(world, finetuned, tmp_path):
    corpus = tmp_path / "other.txt"
    corpus.write_text("a corpus with other characters: 0123456789\n", encoding="utf-8")
    overrides = [f"run_dir={tmp_path / 'run'}", f"init_from={finetuned / 'export'}", f"data.corpus={corpus}",
                 f"data.finetune={world / 'birth_places_train.tsv'}", *TINY]
    one_error_line(launch([str(CONFIGS / "finetune.yaml")], overrides, launcher="python"),
                   "init_from:", "differs from data.corpus's")
    assert not (tmp_path / "run").exists()


def test_init_from_that_is_not_an_export(tmp_path):
    overrides = [f"run_dir={tmp_path / 'run'}", f"init_from={tmp_path}", f"eval.questions={tmp_path / 'q.tsv'}"]
    one_error_line(launch([str(CONFIGS / "evaluate.yaml")], overrides, launcher="python"),
                   "model.safetensors: not found: init_from must name an export directory")


def test_output_directory_that_cannot_be_written(world, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    overrides = pretrain_overrides(world, blocker / "run")
    one_error_line(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"),
                   f"run_dir: cannot write to {blocker / 'run'} (Not a directory)")


def test_resume_required_without_a_checkpoint(world, tmp_path):
    overrides = pretrain_overrides(world, tmp_path / "run", "train.resume=required")
    one_error_line(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"),
                   f"train.resume: required, but {tmp_path / 'run' / 'checkpoints'} holds no complete checkpoint")
    assert not (tmp_path / "run").exists()


def test_corrupted_safetensors_export(world, finetuned, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(finetuned / "export", export)
    weights = export / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a torn copy
    overrides = [f"run_dir={tmp_path / 'run'}", f"init_from={export}", f"eval.questions={world / 'birth_dev.tsv'}", *TINY]
    one_error_line(launch([str(CONFIGS / "evaluate.yaml")], overrides, launcher="python"),
                   f"{weights}: not a readable safetensors file")
    assert not (tmp_path / "run").exists()


def test_rank_detection_from_each_launcher():
    assert detect_context({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}).launcher == "launcher env"
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_JOB_ID": "77"}
    context = detect_context(env)
    assert (context.rank, context.world_size, context.local_rank, context.local_world_size, context.launcher) == (5, 8, 1, 4, "slurm")
    assert env["RANK"] == "5" and env["WORLD_SIZE"] == "8" and env["MASTER_PORT"] == "20077"
    single = detect_context({})
    assert (single.rank, single.world_size, single.launcher) == (0, 1, "single")


def test_srun_style_launch_trains_on_two_ranks(world, tmp_path):
    """Two processes given only SLURM's variables (as srun sets them) form a world of 2."""
    port = str(free_port())
    overrides = pretrain_overrides(world, tmp_path / "run", "train.max_steps=2")
    processes = []
    for rank in range(2):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update(SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_LOCALID=str(rank), SLURM_TASKS_PER_NODE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1")
        processes.append(subprocess.Popen([sys.executable, TRAIN, "--config", str(CONFIGS / "pretrain.yaml"), "--set", *overrides],
                                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][1][-3000:]
    assert "world size 2 (slurm)" in outputs[0][0]
    assert outputs[1][0] == ""  # rank 1 prints nothing


@pytest.mark.parametrize(
    "phase, content, fragments",
    [
        ("pretrain", "\n\n", ("bad.txt: corpus is empty",)),
        ("pretrain", "fine line\nbad \u25a1 line\n", ("bad.txt:2:", "reserved PAD")),
        ("pretrain", "fine line\nbad \u2047 line\n", ("bad.txt:2:", "reserved MASK")),
        ("finetune", "Where was Ada born?London\n", ("bad.txt:1:", "expected exactly one tab")),
        ("finetune", "{question}\tPl\u00f8ce\n", ("bad.txt:1:", "(U+00F8) is not in the vocabulary")),
        ("finetune", "{question} {question}\t{place}\n", ("bad.txt:1:", "block_size 64 allows at most 62")),
    ],
    ids=["empty-corpus", "corpus-with-PAD", "corpus-with-MASK", "tsv-without-tab", "outside-vocabulary", "too-long"],
)
def test_bad_data_files_through_the_launcher(world, tmp_path, phase, content, fragments):
    """Each bad file: one error line naming file (and line), exit 1, and no run directory."""
    question, place = (world / "birth_places_train.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
    bad = tmp_path / "bad.txt"
    bad.write_text(content.format(question=question, place=place), encoding="utf-8")
    run = tmp_path / "run"
    if phase == "pretrain":
        overrides = pretrain_overrides(world, run, f"data.corpus={bad}")
    else:
        overrides = [f"run_dir={run}", f"data.corpus={world / 'wiki.txt'}", f"data.finetune={bad}", *TINY]
    config = CONFIGS / ("pretrain.yaml" if phase == "pretrain" else "finetune_scratch.yaml")
    result = launch([str(config)], overrides, launcher="python")
    assert result.returncode == 1
    one_error_line(result, *fragments)
    assert not run.exists()


def test_resume_with_another_config_is_refused_naming_every_key(world, pretrain_runs, tmp_path):
    """A finished 8-step run asked for 10 steps with another width and learning rate: refused before any
    write, naming both keys; the allow-listed keys (max_steps, log_every) are not reported."""
    run = tmp_path / "run"
    shutil.copytree(pretrain_runs["1rank"], run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    overrides = pretrain_overrides(world, run, "train.max_steps=10", "model.n_embd=64", "train.learning_rate=1e-3",
                                   "train.log_every=5")
    line = one_error_line(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"),
                          f"train.resume: {run / 'checkpoints' / 'step00000008'} was saved with another config (",
                          "model.n_embd: 32 there, 64 now", "train.learning_rate: 0.003 there, 0.001 now",
                          "start fresh with another run_dir")
    assert "max_steps" not in line and "log_every" not in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # config.yaml, run.json untouched


def test_resume_after_the_corpus_gained_a_character_is_refused(world, tmp_path):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text((world / "wiki.txt").read_text(encoding="utf-8"), encoding="utf-8")
    overrides = pretrain_overrides(world, tmp_path / "run", "train.max_steps=2", f"data.corpus={corpus}")
    check(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"))
    with corpus.open("a", encoding="utf-8") as f:
        f.write("Zürich.\n")
    overrides = pretrain_overrides(world, tmp_path / "run", "train.max_steps=4", f"data.corpus={corpus}")
    one_error_line(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"),
                   f"train.resume: {tmp_path / 'run' / 'checkpoints' / 'step00000002'} was saved with another vocabulary",
                   "has the corpus changed?")


def test_an_export_without_its_pretraining_document_count_is_named(finetuned, tmp_path):
    """The count fixes the end of the learning-rate decay: a damaged model.json is an error, not a rate at its floor."""
    export = tmp_path / "export"
    shutil.copytree(finetuned / "export", export)
    meta = json.loads((export / "model.json").read_text(encoding="utf-8"))
    for damaged in ({k: v for k, v in meta.items() if k != "pretraining_documents"}, {**meta, "pretraining_documents": 0}):
        (export / "model.json").write_text(json.dumps(damaged), encoding="utf-8")
        with pytest.raises(DataError, match=rf"^{re.escape(str(export / 'model.json'))}: pretraining_documents must be "
                                            r"a positive integer .*, got (None|0)$"):
            read_export(export)
