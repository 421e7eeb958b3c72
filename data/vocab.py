"""Character vocabulary per SPEC: PAD=0, MASK=1, then the corpus's sorted distinct characters.

The newline that separates documents counts as a corpus character (SPEC's 256 ids for wiki.txt
are PAD, MASK and its 254 distinct characters, newline included).

The vocabulary is fixed by the pretraining corpus (data.corpus.corpus_vocabulary for a corpus on
disk, Vocabulary.from_text for one in memory) and travels with every export as vocab.json, so
finetuning and evaluation use exactly the ids the model was trained on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from data.atomic import write_text_atomically
from data.errors import DataError, describe_char

PAD = "\u25a1"  # □, id 0; the loss ignores it
MASK = "\u2047"  # ⁇, id 1; marks the span-corruption cut and the answer boundaries
RESERVED = (PAD, MASK)
PAD_ID = 0  # the id the loss ignores (GPT.forward's ignore_index)


class Vocabulary:
    """Maps characters to ids and back. Encoding is vectorised (no per-character Python loop)."""

    def __init__(self, corpus_chars: Iterable[str]) -> None:
        chars = sorted(set(corpus_chars) | {"\n"})
        for reserved in RESERVED:
            if reserved in chars:
                raise ValueError(f"corpus characters include the reserved {describe_char(reserved)}")
        self.itos: list[str] = [PAD, MASK, *chars]
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}
        codepoints = np.array([ord(ch) for ch in self.itos], dtype=np.int64)
        self._order = np.argsort(codepoints)
        self._sorted_codepoints = codepoints[self._order]

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def mask_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __contains__(self, ch: str) -> bool:
        return ch in self.stoi

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text` as int64. Raises KeyError naming the first unknown character."""
        codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        pos = np.searchsorted(self._sorted_codepoints, codepoints)
        pos = np.minimum(pos, len(self._sorted_codepoints) - 1)
        known = self._sorted_codepoints[pos] == codepoints
        if not known.all():
            bad = text[int(np.argmin(known))]
            raise KeyError(f"character {describe_char(bad)} is not in the vocabulary")
        return self._order[pos]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    # --- persistence -------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": "spangpt-vocab-1", "itos": self.itos}, ensure_ascii=False)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a crash never leaves a truncated vocab.json beside a checkpoint."""
        write_text_atomically(path, self.to_json())

    @classmethod
    def from_json(cls, text: str, source: str = "<vocab>") -> "Vocabulary":
        try:
            payload = json.loads(text)
            itos = payload["itos"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(source, f"not a spangpt vocabulary file ({exc})") from None
        if not isinstance(itos, list) or itos[:2] != [PAD, MASK] or not all(
            isinstance(c, str) and len(c) == 1 for c in itos
        ):
            raise DataError(source, "vocabulary must list single characters starting with PAD and MASK")
        chars = itos[2:]
        if chars != sorted(set(chars)):
            raise DataError(source, "vocabulary characters after PAD and MASK must be sorted and distinct")
        return cls(chars)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(str(path), f"cannot read vocabulary ({exc.strerror})") from None
        return cls.from_json(text, source=str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<corpus>") -> "Vocabulary":
        """Vocabulary of an in-memory corpus; a PAD or MASK in it is an error naming the line."""
        for reserved in RESERVED:
            at = text.find(reserved)
            if at >= 0:
                line = text.count("\n", 0, at) + 1
                raise DataError(source, reserved_problem(reserved), line)
        return cls(set(text))


class VocabularyAccess:
    """`stoi`, `itos` and `vocab_size` of a dataset's vocabulary: the names minGPT-style code uses."""

    vocab: Vocabulary

    @property
    def stoi(self) -> dict[str, int]:
        return self.vocab.stoi

    @property
    def itos(self) -> list[str]:
        return self.vocab.itos

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def reserved_problem(ch: str) -> str:
    name = "PAD" if ch == PAD else "MASK"
    return f"corpus contains {describe_char(ch)}, the vocabulary's reserved {name} character"
