"""The one error type for bad input files, so every front end can print it as a single line."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data. The message names the file (and line, where there is one) and what is wrong."""

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem

    def __reduce__(self):
        """Pickled with its parts, so a loader worker process hands it to training unchanged."""
        return DataError, (self.source, self.problem, self.line)


def describe_char(ch: str) -> str:
    """A character as a user can find it in an editor: the glyph and its code point."""
    return f"{ch!r} (U+{ord(ch):04X})"
