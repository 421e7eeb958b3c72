"""Mixed pretraining (data.question_mix): training questions with their answers among the corrupted
documents. Only the finetuning split can enter the stream; the stream stays world-size invariant;
at q = 0 it is SPEC's stream exactly."""

from __future__ import annotations

import numpy as np
import pytest

from data.birthplaces import read_questions
from data.corpus import open_corpus
from data.names import NameDataset
from data.stream import ShardedDocumentStream
from data.vocab import MASK, PAD
from experiments.grid import plan_runs
from launcher.config import ConfigError, load_config

from conftest import CONFIGS, ROOT, pretrain_overrides
from launch import check, launch, losses

BLOCK = 64


def stream(world, q: float, rank: int = 0, world_size: int = 1, micro: int = 8) -> ShardedDocumentStream:
    corpus, vocab = open_corpus(world / "wiki.txt")
    names = NameDataset(vocab, (world / "birth_places_train.tsv").read_text(encoding="utf-8"), block_size=BLOCK)
    return ShardedDocumentStream(corpus, vocab, BLOCK, micro, rank, world_size, seed=5, questions=names, question_mix=q)


def texts(s: ShardedDocumentStream, micro_steps: int) -> list[str]:
    """Each example as text: x plus y's last id (y is x shifted by one)."""
    out = []
    for _ in range(micro_steps):
        x, y = s.next_micro_batch()
        out += [s.vocab.decode(np.append(row_x.numpy(), row_y.numpy()[-1])) for row_x, row_y in zip(x, y)]
    return out


def test_only_the_finetuning_split_enters_the_pretraining_stream(world):
    train = {q.text for q in read_questions(world / "birth_places_train.tsv", require_answers=True)}
    held_out = [q.text for name in ("birth_dev.tsv", "birth_test_inputs.tsv")
                for q in read_questions(world / name, require_answers=False)]
    s = stream(world, 0.4)
    examples = texts(s, micro_steps=3 * s.num_items // 8)  # three epochs
    mixed = [t for t in examples if t.split(MASK)[0] in train]
    assert 0.3 < len(mixed) / len(examples) < 0.5  # about q of the examples are questions
    assert len({t.split(MASK)[0] for t in mixed}) > len(train) / 2  # drawn across the split, not one question
    for text in examples:
        assert not any(question in text for question in held_out), text  # no dev or test question, ever
    for text in mixed:  # the finetuning format, answer included
        question, place, rest = text.split(MASK, 2)
        assert place and set(rest) <= {PAD} and question in train


def test_without_mixing_the_stream_is_specs(world):
    corpus, vocab = open_corpus(world / "wiki.txt")
    plain = ShardedDocumentStream(corpus, vocab, BLOCK, 8, seed=5)
    assert texts(stream(world, 0.0), 20) == texts(plain, 20)


def test_the_mixed_stream_is_the_same_at_every_world_size(world):
    one = texts(stream(world, 0.3, micro=8), 6)
    ranks = [stream(world, 0.3, rank=r, world_size=2, micro=4) for r in range(2)]
    two = []
    for _ in range(6):
        for rank in ranks:
            two += texts(rank, 1)
    assert one == two


def test_mixing_needs_the_finetuning_split_and_never_the_evaluation_file(world):
    with pytest.raises(ConfigError, match=r"data.finetune: required to mix training questions into pretraining"):
        load_config(CONFIGS / "pretrain.yaml", ["data.question_mix=0.3"])
    dev = world / "birth_dev.tsv"
    with pytest.raises(ConfigError, match=r"data.question_mix: data.finetune is eval.questions"):
        load_config(CONFIGS / "pretrain.yaml", ["data.question_mix=0.3", f"data.finetune={dev}", f"eval.questions={dev}"])
    with pytest.raises(ConfigError, match=r"data.question_mix: Input should be less than 1"):
        load_config(CONFIGS / "pretrain.yaml", ["data.question_mix=1", f"data.finetune={dev}"])


def test_a_sweep_mixes_in_the_file_its_finetuning_trains_on(world, tmp_path):
    runs = plan_runs(ROOT / "configs" / "demo", tmp_path, ["vanilla"], [0], ["pretrained", "scratch"], world,
                     ["data.question_mix=0.3"])
    pretrain = next(r for r in runs if r.phase_config == "pretrain").config
    finetune = next(r for r in runs if r.phase_config == "finetune").config
    assert pretrain.data.question_mix == 0.3 and pretrain.data.finetune == finetune.data.finetune == world / "birth_places_train.tsv"
    assert pretrain.data.finetune != finetune.eval.questions


def test_a_mixed_pretraining_runs_through_the_launcher(world, tmp_path):
    run = tmp_path / "run"
    overrides = pretrain_overrides(world, run, "data.question_mix=0.5", f"data.finetune={world / 'birth_places_train.tsv'}",
                                   "train.max_steps=4")
    check(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"))
    assert sorted(losses(run)) == [1, 2, 3, 4] and (run / "export" / "model.safetensors").is_file()
