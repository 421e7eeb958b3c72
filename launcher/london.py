"""`python launcher/london.py QUESTIONS.tsv`: the accuracy of answering "London" to every question."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.birthplaces import read_questions  # noqa: E402
from data.errors import DataError  # noqa: E402
from launcher.evaluate import Score  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", help="question<TAB>place file")
    args = parser.parse_args(argv)
    try:
        questions = read_questions(args.questions, require_answers=True)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(Score(sum(q.answer == "London" for q in questions), len(questions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
