"""Every bad input of the data layer gets one error naming the file (and line) and what is wrong."""

from __future__ import annotations

import pytest

from conftest import run_module
from data.birthplaces import read_questions
from data.corpus import DocumentCorpus, corpus_vocabulary
from data.corruption import CharCorruptionDataset
from data.errors import DataError
from data.names import NameDataset
from data.stream import ShardedDocumentStream
from data.vocab import MASK, PAD, Vocabulary

VOCAB = Vocabulary.from_text("Where was Ada born? London Paris\n")


def assert_cli_fails(result, *fragments: str) -> None:
    """One line on stderr, naming what is wrong, and a non-zero exit."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("reserved, name", [(PAD, "PAD"), (MASK, "MASK")])
def test_corpus_with_reserved_character(tmp_path, reserved, name):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(f"fine line\nanother\nbad {reserved} line\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"wiki.txt:3: .*reserved {name}"):
        corpus_vocabulary(DocumentCorpus(corpus))
    with pytest.raises(DataError, match=rf"wiki.txt:3: .*reserved {name}"):
        CharCorruptionDataset(corpus.read_text(encoding="utf-8"), 128, source=str(corpus))
    result = run_module("data.prepare", str(corpus), str(tmp_path / "out"))
    assert_cli_fails(result, "wiki.txt:3:", f"reserved {name}")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))  # no partial output


def test_empty_and_missing_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty.txt: corpus is empty"):
        DocumentCorpus(empty)
    with pytest.raises(DataError, match=r"corpus is empty"):
        CharCorruptionDataset("\n\n", 128)
    assert_cli_fails(run_module("data.prepare", str(tmp_path / "nope.txt"), str(tmp_path / "o")), "nope.txt", "not found")
    (tmp_path / "shards").mkdir()
    with pytest.raises(DataError, match=r"shards: corpus directory holds no \*.txt shards"):
        ShardedDocumentStream(tmp_path / "shards", VOCAB, 128, 4)


def test_corpus_that_is_not_utf8(tmp_path):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("caf\u00e9\n".encode("latin-1"))
    assert_cli_fails(run_module("data.prepare", str(corpus), str(tmp_path / "o")), "latin1.txt", "UTF-8")


@pytest.mark.parametrize(
    "line, problem",
    [
        ("Where was Ada born?London", "expected exactly one tab (question<TAB>place), found 0"),
        ("Where was Ada born?\tLondon\tParis", "found 2"),
        ("Where was Ada born?\t", "empty place after the tab"),
        (f"Where was Ada born?\tLon{MASK}don", "reserved by the vocabulary"),
    ],
)
def test_bad_tsv_line_names_file_and_line(tmp_path, line, problem):
    tsv = tmp_path / "train.tsv"
    tsv.write_text(f"Where was Ada born?\tLondon\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.tsv:2: ") as info:
        NameDataset(VOCAB, tsv.read_text(encoding="utf-8"), block_size=128, source=str(tsv))
    assert problem in str(info.value)
    with pytest.raises(DataError, match=r"train.tsv:2: "):
        read_questions(tsv, require_answers=True)


def test_character_outside_vocabulary_names_file_line_and_character():
    with pytest.raises(DataError, match=r"dev.tsv:2: character 'ß' \(U\+00DF\) is not in the vocabulary"):
        NameDataset(VOCAB, "Where was Ada born?\tLondon\nWhere was Aß born?\tParis\n", block_size=128, source="dev.tsv")


def test_question_too_long_for_block_size():
    tsv = "Where was Ada born?\tLondon\n" * 2 + "Where was " + "Ada " * 30 + "born?\tLondon\n"
    with pytest.raises(DataError, match=r"long.tsv:3: question and place are 141 characters; block_size 128 allows at most 126"):
        NameDataset(VOCAB, tsv, block_size=128, source="long.tsv")


def test_question_file_mixing_answered_and_bare_lines():
    text = "Where was Ada born?\tLondon\nWhere was Ada born?\n"
    from data.birthplaces import parse_questions

    with pytest.raises(DataError, match=r"q.tsv:2: some lines have a place"):
        parse_questions(text, "q.tsv", require_answers=False)
    bare = parse_questions("Where was Ada born?\nWhere was Ada born?\n", "q.tsv", require_answers=False)
    assert [q.answer for q in bare] == [None, None]
    with pytest.raises(DataError, match=r"missing.tsv: question file not found"):
        read_questions("missing.tsv", require_answers=False)


def test_prepare_refuses_to_overwrite(tmp_path, small_corpus):
    path, _ = small_corpus
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious", encoding="utf-8")
    assert_cli_fails(run_module("data.prepare", str(path), str(tmp_path / "out")), "out", "already exists")
    assert (tmp_path / "out" / "keep.txt").read_text(encoding="utf-8") == "precious"


def test_synthetic_world_with_too_few_places(tmp_path):
    result = run_module("data.synthetic", str(tmp_path / "w"), "--places", "5")
    assert_cli_fails(result, "at least 10 places")
    assert not (tmp_path / "w").exists()
