"""Vocabulary per SPEC: ids, persistence, and the reserved characters."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from data.corpus import DocumentCorpus, corpus_vocabulary
from data.errors import DataError
from data.vocab import MASK, PAD, Vocabulary


def test_ids_follow_spec():
    vocab = Vocabulary.from_text("ba\ncab\n")
    assert vocab.itos == [PAD, MASK, "\n", "a", "b", "c"]
    assert vocab.stoi[PAD] == 0 and vocab.stoi[MASK] == 1
    assert vocab.encode("cab").tolist() == [5, 3, 4]
    assert vocab.decode([5, 3, 4, 0, 1]) == "cab" + PAD + MASK


def test_real_corpus_has_256_ids(real_data):
    vocab = corpus_vocabulary(DocumentCorpus(real_data / "wiki.txt"))
    assert len(vocab) == 256
    text = (real_data / "wiki.txt").read_text(encoding="utf-8")
    assert vocab == Vocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text[:5000])) == text[:5000]


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.from_text("héllo wörld ⁂\n")
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # nothing written beside it


def test_a_failed_save_keeps_the_previous_file_whole_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """The disk fills half-way through the write: the old vocab.json is untouched and no partial file remains."""
    old = Vocabulary.from_text("abc\n")
    old.save(tmp_path / "vocab.json")
    before = (tmp_path / "vocab.json").read_bytes()
    real_write_text = Path.write_text

    def half_then_full_disk(self: Path, text: str, *args, **kwargs) -> int:
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        Vocabulary.from_text("héllo wörld ⁂\n").save(tmp_path / "vocab.json")
    monkeypatch.undo()
    assert (tmp_path / "vocab.json").read_bytes() == before
    assert Vocabulary.load(tmp_path / "vocab.json") == old
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]


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
