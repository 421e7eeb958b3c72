"""Salient span masking (data.masking=salient): span corruption whose masked span is a name, number or
date of the document, found by rules on its text. Like the other recipes it reads no question or
answer file, and the stream stays a function of (seed, epoch, document): the same at every world
size, and resumed where it stopped."""

from __future__ import annotations

import inspect
import random

import pytest

import data.salient
from data.corpus import open_corpus
from data.corruption import corrupt_document, example_rng
from data.salient import corrupt_document_salient, salient_spans, title_of
from data.stream import ShardedDocumentStream
from data.vocab import MASK, PAD

from conftest import CONFIGS, pretrain_overrides
from launch import check, launch, losses

BLOCK = 64


def spans_text(text: str, title: str | None = None) -> list[str]:
    return [text[s:e] for s, e in salient_spans(text, title)]


def test_names_numbers_and_dates_are_salient_and_function_words_are_not():
    text = ("Ann Lee. Lee (26 February 1840 Columbus, Ohio - May 2, 1901) was born in New York City . "
            "She studied at the University of Glasgow in the 1860s . He moved to Frankfurt am Main on 3-11-1920 .")
    assert spans_text(text, "Ann Lee") == [
        "26 February 1840", "Columbus", "Ohio", "May 2, 1901", "New York City", "University of Glasgow", "1860s",
        "Frankfurt am Main", "3-11-1920"]
    # without a title the person's own name counts too; a connector after the last name is no part of it
    assert spans_text("The works of Ann Lee of the city", None) == ["Ann Lee"]
    assert title_of("Ann Lee. born in Oslo .") == "Ann Lee" and title_of("no title here") is None


def masked_part(example: str) -> tuple[str, str]:
    """(the text shown with its ⁇, the masked span) of a corrupted training string."""
    body = example.rstrip(PAD)
    head, _, masked = body.rpartition(MASK)
    return head, masked


def test_the_masked_span_is_a_salient_span_of_the_truncation_chosen_at_random():
    document = "Ann Lee. Ann Lee was born in Oslo in 1901 . Rome ."
    seen = set()
    for i in range(400):
        text, n = corrupt_document_salient(document, BLOCK, random.Random(i))
        _, spec_n = corrupt_document(document, BLOCK, random.Random(i))
        assert n == spec_n  # SPEC's truncation, the first draw of the same generator
        head, masked = masked_part(text)
        fits = [document[s:e] for s, e in salient_spans(document, "Ann Lee") if e <= n]
        if fits:
            assert masked in fits
            prefix, _, suffix = head.partition(MASK)
            assert prefix + masked + suffix == document[:n]  # the span is cut out where it stands
            seen.add(masked)
    assert seen == {"Oslo", "1901", "Rome"}  # every salient span gets its turn; the person's name never


def test_a_truncation_without_a_salient_span_is_masked_by_specs_rules():
    document = "it was a quiet day and nothing at all happened in it ."
    for i in range(50):
        assert corrupt_document_salient(document, BLOCK, random.Random(i)) == corrupt_document(document, BLOCK, random.Random(i))
    # a word the truncation cuts ("Oslo" -> "Os") is not a span: SPEC's rules again
    assert corrupt_document_salient("was in Oslo", 8, random.Random(1)) == corrupt_document("was in Oslo", 8, random.Random(1))


def test_salient_masking_reads_no_question_or_answer_file():
    source = inspect.getsource(data.salient)
    assert "open(" not in source and "read_text" not in source and "birthplaces" not in source
    assert list(inspect.signature(corrupt_document_salient).parameters) == ["document", "block_size", "rng"]


def stream(world, masking: str, rank: int = 0, world_size: int = 1, micro: int = 8) -> ShardedDocumentStream:
    corpus, vocab = open_corpus(world / "wiki.txt")
    return ShardedDocumentStream(corpus, vocab, BLOCK, micro, rank, world_size, seed=3, masking=masking)


def examples(streams: list[ShardedDocumentStream], micro_steps: int) -> list[str]:
    out = []
    for _ in range(micro_steps):
        for s in streams:
            x, y = s.next_micro_batch()
            out += [s.vocab.decode(row_x.numpy()) + s.vocab.decode(row_y[-1:].numpy()) for row_x, row_y in zip(x, y)]
    return out


def test_salient_stream_is_the_same_at_every_world_size_and_after_a_resume(world):
    one = examples([stream(world, "salient")], 6)
    two = examples([stream(world, "salient", rank=r, world_size=2, micro=4) for r in range(2)], 6)
    assert one == two
    assert one != examples([stream(world, "random")], 6)
    # stopped after 3 micro-steps at world size 1, resumed at world size 2
    first = stream(world, "salient")
    head = examples([first], 3)
    resumed = [stream(world, "salient", rank=r, world_size=2, micro=4) for r in range(2)]
    for s in resumed:
        s.load_state_dict(first.state_dict())
    assert head + examples(resumed, 3) == one


def test_the_stream_masks_each_document_by_the_salient_rules(world):
    s = stream(world, "salient")
    shown = examples([s], 4)
    epochs, items = s.items_at(list(range(len(shown))))
    expected = [corrupt_document_salient(s.corpus.document(i), BLOCK, example_rng(3, e, i))[0]
                for e, i in zip(epochs.tolist(), items.tolist())]
    assert shown == expected
    # on this world a third of SPEC's truncations reach a place, a name or a date
    names = [m for m in map(lambda e: masked_part(e)[1], shown) if m[:1].isupper() and m not in ("The", "He", "She")]
    assert len(names) >= 0.25 * len(shown)


def test_a_salient_pretraining_runs_through_the_launcher(world, tmp_path):
    run = tmp_path / "run"
    check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, run, "data.masking=salient", "train.max_steps=3"),
                 launcher="python"))
    assert sorted(losses(run)) == [1, 2, 3] and (run / "export" / "model.safetensors").is_file()


@pytest.mark.parametrize("setting, message", [
    ("data.masking=entities", "data.masking: Input should be 'random' or 'salient'"),
    ("data.objective=text", "data.masking: salient chooses the masked span of span corruption, and data.objective is text"),
])
def test_bad_masking_is_one_line_naming_the_key(world, tmp_path, setting, message):
    extra = [setting] if setting.startswith("data.masking") else ["data.masking=salient", setting]
    result = launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, tmp_path / "r", *extra), launcher="python")
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()
