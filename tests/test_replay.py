"""Finetuning with replay (data.replay): SPEC's span corruption of the corpus among the questions.
Every question once an epoch, a share r of documents beside them, the documents in turn across
epochs, the same stream at every world size; a sweep gives such a finetune the corpus, and no other.
With data.masking=salient the replayed documents are masked as a salient pretraining masked them."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from data.birthplaces import read_questions
from data.corpus import open_corpus
from data.names import NameDataset
from data.replay import QuestionsWithReplay
from data.salient import salient_spans, title_of
from data.stream import ShardedExampleStream
from data.vocab import MASK, PAD
from experiments.grid import plan_runs
from experiments.tables import recipe_keys
from launcher.config import ConfigError, load_config
from launcher.distributed import DistributedContext
from launcher.phases import finetuning_data

from conftest import CONFIGS, ROOT, TINY
from launch import check, launch

BLOCK = 64


def replay(world, r: float, seed: int = 5, masking: str = "random") -> QuestionsWithReplay:
    corpus, vocab = open_corpus(world / "wiki.txt")
    names = NameDataset(vocab, (world / "birth_places_train.tsv").read_text(encoding="utf-8"), block_size=BLOCK)
    return QuestionsWithReplay(names, corpus, vocab, BLOCK, seed, r, masking)


def text(examples: QuestionsWithReplay, epoch: int, item: int) -> str:
    x, y = examples(epoch, item)
    return examples.vocab.decode(np.append(x.numpy(), y.numpy()[-1]))


def test_an_epoch_is_every_question_once_and_a_share_r_of_documents(world):
    examples = replay(world, 0.5)
    train = [q.text for q in read_questions(world / "birth_places_train.tsv", require_answers=True)]
    assert examples.num_items == 2 * len(train)  # r = 0.5: as many documents as questions
    assert replay(world, 0.25).num_items == len(train) + round(len(train) / 3)
    for epoch in (0, 3):
        texts = [text(examples, epoch, item) for item in range(examples.num_items)]
        questions = [t.split(MASK)[0] for t in texts[:len(train)]]
        assert questions == train  # each question once, with its answer in the finetuning format
        for t in texts[:len(train)]:
            assert set(t.split(MASK, 2)[2]) <= {PAD}


def test_replayed_examples_are_span_corruptions_of_the_corpus_and_nothing_else(world):
    examples = replay(world, 0.5)
    held_out = [q.text for name in ("birth_dev.tsv", "birth_places_train.tsv")
                for q in read_questions(world / name, require_answers=False)]
    for item in range(len(examples.questions), examples.num_items):
        corpus_pass, document = examples.document_of(2, item)
        prefix, suffix, masked = text(examples, 2, item).rstrip(PAD).split(MASK)
        assert examples.corpus.document(document).startswith(prefix + masked + suffix)  # SPEC's corruption of it
        assert not any(question in prefix + suffix + masked for question in held_out)  # label-free


def test_documents_are_replayed_in_turn_with_new_corruptions_each_pass(world):
    examples = replay(world, 0.5)
    documents = len(examples.corpus)
    epochs = math.ceil(2 * documents / examples.replayed_per_epoch)  # at least two passes over the corpus
    seen = Counter()
    shown: dict[int, set[str]] = {}
    for epoch in range(epochs):
        for item in range(len(examples.questions), examples.num_items):
            _, document = examples.document_of(epoch, item)
            seen[document] += 1
            shown.setdefault(document, set()).add(text(examples, epoch, item))
    assert set(seen) == set(range(documents)) and max(seen.values()) - min(seen.values()) <= 1
    assert sum(len(corruptions) > 1 for corruptions in shown.values()) > documents / 2


def test_the_replay_stream_is_the_same_at_every_world_size(world):
    examples = replay(world, 0.4)
    one = ShardedExampleStream(examples.num_items, examples, 8, seed=5)
    ranks = [ShardedExampleStream(examples.num_items, examples, 4, rank, 2, seed=5) for rank in range(2)]
    for _ in range(examples.num_items // 8 + 3):  # across an epoch's end
        x, y = one.next_micro_batch()
        parts = [rank.next_micro_batch() for rank in ranks]
        assert (x == np.concatenate([p[0] for p in parts])).all() and (y == np.concatenate([p[1] for p in parts])).all()


def test_replay_is_finetuning_only_and_needs_the_corpus(world):
    with pytest.raises(ConfigError, match=r"data.replay: finetuning only, and this is a pretrain config"):
        load_config(CONFIGS / "pretrain.yaml", ["data.replay=0.5"])
    with pytest.raises(ConfigError, match=r"data.replay: needs data.corpus, the documents to replay"):
        load_config(CONFIGS / "finetune.yaml", ["data.replay=0.5"])
    with pytest.raises(ConfigError, match=r"data.replay: Input should be less than 1"):
        load_config(CONFIGS / "finetune.yaml", ["data.replay=1", f"data.corpus={world / 'wiki.txt'}"])


def test_salient_replay_masks_a_name_number_or_date_of_the_same_truncation(world):
    random_, salient = replay(world, 0.5), replay(world, 0.5, masking="salient")
    questions = len(salient.questions)
    assert [text(salient, 1, i) for i in range(questions)] == [text(random_, 1, i) for i in range(questions)]
    with_span = 0
    for item in range(questions, salient.num_items):
        _, document = salient.document_of(1, item)
        full = salient.corpus.document(document)
        prefix, suffix, masked = text(salient, 1, item).rstrip(PAD).split(MASK)
        shown = prefix + masked + suffix
        assert shown == "".join(text(random_, 1, item).rstrip(PAD).split(MASK)[i] for i in (0, 2, 1))  # SPEC's truncation
        spans = [(s, e) for s, e in salient_spans(full, title_of(full)) if e <= len(shown) and e - s < len(shown)]
        if spans:  # the masked span is one of the truncation's names, numbers or dates
            assert (len(prefix), len(prefix) + len(masked)) in spans
            with_span += 1
    assert with_span >= 0.25 * (salient.num_items - questions)
    with pytest.raises(ValueError, match="unknown masking 'entities'"):
        replay(world, 0.5, masking="entities")


def test_an_unphased_salient_masking_masks_pretraining_and_a_finetunes_replay(world, tmp_path):
    def phases(*overrides: str) -> dict[str, object]:
        runs = plan_runs(ROOT / "configs" / "demo", tmp_path, ["vanilla"], [0], ["pretrained"], world, list(overrides))
        return {r.phase_config: r.config for r in runs}
    plain = phases("data.masking=salient")  # as before replay read it: the finetune plans, and corrupts nothing
    assert plain["pretrain"].data.masking == "salient" and plain["finetune"].data.replay == 0
    replaying = phases("data.masking=salient", "finetune:data.replay=0.5")
    assert replaying["finetune"].data.masking == "salient" and replaying["finetune"].data.corpus == world / "wiki.txt"


def test_the_finetune_phase_replays_with_its_configs_masking(world):
    corpus, vocab = open_corpus(world / "wiki.txt")
    overrides = [f"data.corpus={world / 'wiki.txt'}", f"data.finetune={world / 'birth_places_train.tsv'}",
                 f"data.block_size={BLOCK}", "data.replay=0.5", "init_from=null",
                 f"eval.questions={world / 'birth_dev.tsv'}"]
    single = DistributedContext(rank=0, local_rank=0, world_size=1, local_world_size=1, launcher="single")
    for masking in ("random", "salient"):
        config = load_config(CONFIGS / "finetune.yaml", [*overrides, f"data.masking={masking}"])
        made = finetuning_data(config, single).stream.make_example
        expected = replay(world, 0.5, seed=config.seed, masking=masking)
        items = range(len(expected.questions), expected.num_items)
        assert [text(made, 2, i) for i in items] == [text(expected, 2, i) for i in items]


def test_a_sweep_gives_a_replaying_finetune_the_corpus_and_a_plain_one_none(world, tmp_path):
    def finetune(*overrides: str):
        runs = plan_runs(ROOT / "configs" / "demo", tmp_path, ["vanilla"], [0], ["pretrained"], world, list(overrides))
        return next(r for r in runs if r.phase_config == "finetune").config
    assert finetune().data.corpus is None  # the vocabulary comes with the export: the config as before
    replaying = finetune("finetune:data.replay=0.5")
    assert replaying.data.replay == 0.5 and replaying.data.corpus == world / "wiki.txt"


def test_a_replaying_finetune_runs_through_the_launcher(world, pretrain_runs, tmp_path):
    run = tmp_path / "run"
    train = len(read_questions(world / "birth_places_train.tsv", require_answers=True))
    overrides = [f"run_dir={run}", f"init_from={pretrain_runs['1rank'] / 'export'}", f"data.corpus={world / 'wiki.txt'}",
                 f"data.finetune={world / 'birth_places_train.tsv'}", f"eval.questions={world / 'birth_dev.tsv'}",
                 "data.replay=0.5", "train.global_batch_size=16", "train.epochs=1", *TINY]
    result = check(launch([str(CONFIGS / "finetune.yaml")], overrides, launcher="python"))
    assert f"steps 0 -> {math.ceil(2 * train / 16)}" in result.stdout  # an epoch: the questions and as many documents
    assert (run / "accuracy.json").is_file() and (run / "export" / "model.safetensors").is_file()


def test_a_finetunes_masking_is_a_recipe_of_the_report_only_where_a_finetune_replays():
    def sweep(pretrain: str, finetune: str, replay: float) -> SimpleNamespace:
        configs = {"pretrain": {"data": {"masking": pretrain, "replay": 0.0}},
                   "finetune": {"data": {"masking": finetune, "replay": replay}}}
        return SimpleNamespace(phase_run=lambda phase: SimpleNamespace(config=configs[phase]))
    reference = sweep("random", "random", 0.0)
    # an unphased data.masking=salient: the finetune's copy reads nothing, and the row does not claim it
    assert recipe_keys([reference, sweep("salient", "salient", 0.0)]) == ["data.masking"]
    assert recipe_keys([reference, sweep("salient", "salient", 0.7)]) == [
        "data.masking", "finetune:data.masking", "finetune:data.replay"]
