"""Vocabulary per SPEC: ids, persistence, and the reserved characters."""

from __future__ import annotations

import pytest

from data.errors import DataError
from data.vocab import MASK, PAD, Vocabulary


def test_ids_follow_spec():
    vocab = Vocabulary.from_text("ba\ncab\n")
    assert vocab.itos == [PAD, MASK, "\n", "a", "b", "c"]
    assert vocab.stoi[PAD] == 0 and vocab.stoi[MASK] == 1
    assert vocab.encode("cab").tolist() == [5, 3, 4]
    assert vocab.decode([5, 3, 4, 0, 1]) == "cab" + PAD + MASK


def test_real_corpus_has_256_ids(real_data):
    vocab = Vocabulary.from_corpus_file(real_data / "wiki.txt")
    assert len(vocab) == 256
    text = (real_data / "wiki.txt").read_text(encoding="utf-8")
    assert vocab == Vocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text[:5000])) == text[:5000]


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.from_text("héllo wörld ⁂\n")
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    assert not list(tmp_path.glob("*.tmp"))


def test_unknown_character_is_named():
    with pytest.raises(KeyError, match=r"'z' \(U\+007A\)"):
        Vocabulary.from_text("abc").encode("abz")


@pytest.mark.parametrize("reserved", [PAD, MASK])
def test_corpus_with_reserved_character_is_rejected_with_line(reserved):
    with pytest.raises(DataError, match=rf"corpus.txt:3: corpus contains .*U\+{ord(reserved):04X}"):
        Vocabulary.from_text(f"one\ntwo\nth{reserved}ree\n", source="corpus.txt")


def test_corrupted_vocab_file_names_the_file(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text('{"itos": ["a", "b"]}', encoding="utf-8")
    with pytest.raises(DataError, match=r"vocab.json: vocabulary must list"):
        Vocabulary.load(path)
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"vocab.json: not a spangpt vocabulary"):
        Vocabulary.load(path)
