"""Question files in the real TSV format: `question<TAB>place` per line, or `question` alone.

Every problem is reported as one DataError naming the file and the 1-based line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from data.errors import DataError, describe_char
from data.vocab import RESERVED, Vocabulary


@dataclass(frozen=True)
class Question:
    text: str
    answer: str | None  # None in a file of questions only (e.g. test inputs)
    line: int


def split_lines(text: str) -> list[str]:
    """Lines of a file; one final newline ends the last line rather than starting an empty one."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_questions(text: str, source: str, require_answers: bool) -> list[Question]:
    """Parse a question file. With require_answers, every line must hold exactly one tab.

    Without it, a file is either all `question<TAB>place` or all `question`; mixing is an error,
    because it would silently score some lines and not others.
    """
    questions: list[Question] = []
    for number, line in enumerate(split_lines(text), start=1):
        tabs = line.count("\t")
        if require_answers and tabs != 1:
            raise DataError(source, f"expected exactly one tab (question<TAB>place), found {tabs}", number)
        if tabs > 1:
            raise DataError(source, f"expected at most one tab (question<TAB>place), found {tabs}", number)
        question, _, answer = line.partition("\t")
        if not question:
            raise DataError(source, "empty question", number)
        if tabs and not answer:
            raise DataError(source, "empty place after the tab", number)
        for reserved in RESERVED:
            if reserved in line:
                raise DataError(source, f"contains {describe_char(reserved)}, reserved by the vocabulary", number)
        questions.append(Question(question, answer if tabs else None, number))
    if not questions:
        raise DataError(source, "no questions (file is empty)")
    with_answers = {q.answer is not None for q in questions}
    if len(with_answers) > 1:
        first_odd = next(q for q in questions if (q.answer is not None) != (questions[0].answer is not None))
        raise DataError(source, "some lines have a place after a tab and some do not", first_odd.line)
    return questions


def read_questions(path: str | os.PathLike, require_answers: bool) -> list[Question]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(str(path), "question file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"not valid UTF-8 ({exc.reason})") from None
    return parse_questions(text, str(path), require_answers)


def check_questions(questions: list[Question], vocab: Vocabulary, source: str, block_size: int,
                    context_length: int) -> None:
    """The one rule for question files, applied before any training or decoding: every character of
    every question and place has an id in the model's vocabulary, `question⁇place⁇` fits in
    block_size (a finetuning example), and `question⁇` fits in the model's context (an evaluation
    prompt, which may have no place)."""
    for q in questions:
        for part in (q.text, q.answer or ""):
            try:
                vocab.encode(part)
            except KeyError as exc:
                raise DataError(source, exc.args[0], q.line) from None
        if q.answer is not None and len(q.text) + len(q.answer) + 2 > block_size:
            raise DataError(source, f"question and place are {len(q.text) + len(q.answer)} characters; "
                                    f"block_size {block_size} allows at most {block_size - 2}", q.line)
        if len(q.text) + 1 > context_length:
            raise DataError(source, f"question of {len(q.text)} characters; the model's context of "
                                    f"{context_length} allows at most {context_length - 1}", q.line)
