"""Random access to the documents of a corpus without loading it.

A corpus is one text file or a directory of `*.txt` shards, one document per line, UTF-8. Empty
lines are not documents (SPEC skips empty documents). Opening a corpus records only the byte
offset of each document (8 bytes per document); `python -m data.prepare` stores that index as
`index.npy`, which is memory-mapped, so opening a prepared corpus reads almost nothing.
"""

from __future__ import annotations

import bisect
import json
import os
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from data.errors import DataError
from data.vocab import RESERVED, Vocabulary, reserved_problem

INDEX_FILE = "index.npy"
MANIFEST_FILE = "manifest.json"
VOCAB_FILE = "vocab.json"


def list_shards(path: Path) -> list[Path]:
    """The corpus files behind `path`, in a fixed (sorted) order."""
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted(p for p in path.glob("*.txt") if p.is_file())
        if not shards:
            raise DataError(str(path), "corpus directory holds no *.txt shards")
        return shards
    raise DataError(str(path), "corpus not found")


class DocumentCorpus:
    """The non-empty lines of a corpus, addressable by index, read from disk on demand."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.shards = list_shards(self.path)
        self.offsets, self.shard_starts = self._load_or_build_index()
        if len(self.offsets) == 0:
            raise DataError(str(self.path), "corpus is empty (no non-empty lines)")
        self._handles: dict[int, object] = {}
        self._pid = os.getpid()  # whose handles they are

    # --- index -------------------------------------------------------------------------------
    def _load_or_build_index(self) -> tuple[np.ndarray, list[int]]:
        manifest = self.path / MANIFEST_FILE if self.path.is_dir() else None
        if manifest is not None and manifest.is_file() and (self.path / INDEX_FILE).is_file():
            recorded = json.loads(manifest.read_text(encoding="utf-8"))
            actual = [[p.name, p.stat().st_size] for p in self.shards]
            if recorded.get("shards") == actual:
                offsets = np.load(self.path / INDEX_FILE, mmap_mode="r")
                return offsets, list(recorded["shard_starts"])
        return self._scan_offsets()

    def _scan_offsets(self) -> tuple[np.ndarray, list[int]]:
        offsets = array("Q")
        shard_starts = []
        for shard in self.shards:
            shard_starts.append(len(offsets))
            with open(shard, "rb") as f:
                pos = 0
                for raw in f:
                    if raw.strip(b"\r\n"):
                        offsets.append(pos)
                    pos += len(raw)
        return np.frombuffer(offsets, dtype=np.uint64) if offsets else np.zeros(0, np.uint64), shard_starts

    # --- access ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets)

    def locate(self, index: int) -> tuple[Path, int]:
        """(shard, 1-based line number) of a document, for error messages."""
        shard = bisect.bisect_right(self.shard_starts, index) - 1
        offset = int(self.offsets[index])
        with open(self.shards[shard], "rb") as f:
            line = f.read(offset).count(b"\n") + 1
        return self.shards[shard], line

    def document(self, index: int) -> str:
        if not 0 <= index < len(self.offsets):
            raise IndexError(f"document {index} out of range for a corpus of {len(self.offsets)}")
        shard = bisect.bisect_right(self.shard_starts, index) - 1
        if self._pid != os.getpid():  # a forked loader worker: the parent's handles share its file offsets
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = open(self.shards[shard], "rb")
        handle.seek(int(self.offsets[index]))
        raw = handle.readline().rstrip(b"\r\n")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            path, line = self.locate(index)
            raise DataError(str(path), "not valid UTF-8", line) from None

    def __iter__(self) -> Iterator[str]:
        """Documents in corpus order, streamed shard by shard."""
        for shard in self.shards:
            with open(shard, encoding="utf-8", newline="\n") as f:
                for line in f:
                    line = line.rstrip("\r\n")
                    if line:
                        yield line

    def distinct_characters(self) -> set[str]:
        """All characters of the corpus, streamed; PAD or MASK anywhere is an error naming the line."""
        chars: set[str] = set()
        for shard in self.shards:
            with open(shard, encoding="utf-8", newline="\n") as f:
                try:
                    for number, line in enumerate(f, start=1):
                        line_chars = set(line.rstrip("\r\n"))
                        for reserved in RESERVED:
                            if reserved in line_chars:
                                raise DataError(str(shard), reserved_problem(reserved), number)
                        chars |= line_chars
                except UnicodeDecodeError as exc:
                    raise DataError(str(shard), f"not valid UTF-8 ({exc.reason})") from None
        return chars

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __getstate__(self) -> dict:
        # Open file handles do not travel to worker processes; each reopens its own.
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state


def corpus_vocabulary(corpus: DocumentCorpus) -> Vocabulary:
    """The vocabulary a corpus fixes: a prepared directory carries it as vocab.json; otherwise the
    corpus is scanned (streamed; PAD or MASK in it is an error naming the line)."""
    prepared = corpus.path / VOCAB_FILE
    if corpus.path.is_dir() and prepared.is_file():
        return Vocabulary.load(prepared)
    return Vocabulary(corpus.distinct_characters())


def open_corpus(path: str | os.PathLike) -> tuple[DocumentCorpus, Vocabulary]:
    """A pretraining corpus and the vocabulary it fixes."""
    corpus = DocumentCorpus(path)
    return corpus, corpus_vocabulary(corpus)
