"""Knowledge-storage recipes beside question mixing: plain-text pretraining (data.objective=text)
and label-free name-anchored augmentation (data.augment=name_anchored). Both keep the stream a
function of (seed, epoch, document), so world-size invariance and resume hold; neither reads a
question or answer file."""

from __future__ import annotations

import inspect
import random

import pytest

import data.augment
from data.augment import name_anchored_variant, split_title, stand_alone
from data.corpus import open_corpus
from data.stream import ShardedDocumentStream
from data.vocab import PAD

from conftest import CONFIGS, pretrain_overrides
from launch import check, launch, losses

BLOCK = 64


def stream(world, objective: str, augment: str, rank: int = 0, world_size: int = 1, micro: int = 8):
    corpus, vocab = open_corpus(world / "wiki.txt")
    return ShardedDocumentStream(corpus, vocab, BLOCK, micro, rank, world_size, seed=3, objective=objective, augment=augment)


def examples(s: ShardedDocumentStream, micro_steps: int) -> list[tuple[str, str]]:
    """(input text, target text) of each example; a PAD target is one the loss ignores."""
    out = []
    for _ in range(micro_steps):
        x, y = s.next_micro_batch()
        out += [(s.vocab.decode(row_x.numpy()), s.vocab.decode(row_y.numpy())) for row_x, row_y in zip(x, y)]
    return out


def test_text_objective_shows_a_documents_start_with_every_character_a_target(world):
    s = stream(world, "text", "none")
    documents = {s.corpus.document(i) for i in range(len(s.corpus))}
    for x, y in examples(s, 4):
        shown = (x + y[-1]).rstrip(PAD)
        assert any(d[:BLOCK] == shown for d in documents)  # the document's first block, untouched
        assert y[: len(shown) - 1] == shown[1:]  # next character everywhere: no masked span, no ignored text


def test_name_anchored_variants_put_the_name_before_every_part_of_the_paragraph():
    document = "Ann Lee. Lee was born in Oslo . She moved to Rome in 1901 . Her works are held in Paris ."
    assert split_title(document) == ("Ann Lee", "Lee was born in Oslo . She moved to Rome in 1901 . Her works are held in Paris .")
    assert stand_alone("She moved to Rome", "Ann Lee") == "Ann Lee moved to Rome"
    assert stand_alone("Her works are held", "Ann Lee") == "Ann Lee's works are held"
    assert stand_alone("Lee was born", "Ann Lee") == "Ann Lee was born"
    assert stand_alone("Leeds is a city", "Ann Lee") == "Leeds is a city"
    rng = random.Random(0)
    variants = {name_anchored_variant(document, rng) for _ in range(300)}
    full = "Ann Lee. Ann Lee was born in Oslo . Ann Lee moved to Rome in 1901 . Ann Lee's works are held in Paris ."
    assert full in variants
    assert all(v.startswith("Ann Lee. ") and full.endswith(v.removeprefix("Ann Lee. ")) for v in variants)
    assert "Ann Lee. Paris ." in variants and "Ann Lee. Rome in 1901 . Ann Lee's works are held in Paris ." in variants
    assert len(variants) > 15  # starts at many words, so every fact opens some example next to the name
    assert name_anchored_variant("no title here", rng) == "no title here"


def test_a_variant_uses_only_characters_its_corpus_has(tmp_path):
    """A corpus without an apostrophe keeps "His"/"Her", and a name that begins like a pronoun stays whole."""
    assert stand_alone("Her Sou was born in Oslo", "Her Sou") == "Her Sou was born in Oslo"
    assert stand_alone("He Xu moved to Rome", "He Xu") == "He Xu moved to Rome"
    assert stand_alone("Her works are held", "Ann Lee", possessives=False) == "Her works are held"
    text = "Her Sou. Her Sou was born in Oslo . Her works are held in Rome .\nAnn Lee. She was born in Oslo . His son moved to Rome .\n"
    (tmp_path / "wiki.txt").write_text(text, encoding="utf-8")
    corpus, vocab = open_corpus(tmp_path / "wiki.txt")
    assert "'" not in vocab
    s = ShardedDocumentStream(corpus, vocab, BLOCK, 2, seed=3, objective="text", augment="name_anchored")
    shown = [x for _ in range(50) for x, _ in examples(s, 1)]  # 50 epochs encode: nothing outside the vocabulary
    assert any(x.startswith("Ann Lee. Ann Lee was born in Oslo") for x in shown)
    assert not any("Sou Sou" in x or "Her Sou's" in x for x in shown)


def test_augmentation_reads_no_question_or_answer_file():
    source = inspect.getsource(data.augment)
    assert "open(" not in source and "read_text" not in source and "birthplaces" not in source
    assert list(inspect.signature(name_anchored_variant).parameters) == ["document", "rng", "whole", "possessives"]


@pytest.mark.parametrize("objective,augment", [("text", "name_anchored"), ("span_corruption", "name_anchored")])
def test_recipe_streams_are_the_same_at_every_world_size(world, objective, augment):
    one = examples(stream(world, objective, augment, micro=8), 5)
    ranks = [stream(world, objective, augment, rank=r, world_size=2, micro=4) for r in range(2)]
    two = []
    for _ in range(5):
        for rank in ranks:
            two += examples(rank, 1)
    assert one == two
    assert one != examples(stream(world, objective, "none"), 5)


def test_default_recipe_is_specs_stream(world):
    corpus, vocab = open_corpus(world / "wiki.txt")
    spec = ShardedDocumentStream(corpus, vocab, BLOCK, 8, seed=3)
    assert examples(spec, 5) == examples(stream(world, "span_corruption", "none"), 5)


def test_a_text_pretraining_with_augmentation_runs_through_the_launcher(world, tmp_path):
    run = tmp_path / "run"
    overrides = pretrain_overrides(world, run, "data.objective=text", "data.augment=name_anchored", "train.max_steps=3")
    check(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"))
    assert sorted(losses(run)) == [1, 2, 3] and (run / "export" / "model.safetensors").is_file()


def test_an_unknown_recipe_is_one_line_naming_the_key(world, tmp_path):
    result = launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, tmp_path / "r", "data.objective=mlm"),
                    launcher="python")
    assert result.returncode != 0 and "data.objective" in result.stderr and "span_corruption" in result.stderr
    assert not (tmp_path / "r").exists()
