"""`python -m experiments.baselines QUESTIONS.tsv`: what a model scores without knowing anything.

    python -m experiments.baselines datasets/birthplaces/birth_dev.tsv
    Correct: 25 out of 500: 5.0%
    Most common answer (London): Correct: 25 out of 500: 5.0%

The first line answers "London" to every question (the reference baseline); the second answers
every question with the file's most common place (ties: the first in file order), the best any
constant answer can do on that file. A model that does not beat both has learned no facts. The
report prints both beside every sweep's table.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from data.birthplaces import read_questions
from data.errors import DataError
from launcher.evaluate import Score

PROG = "python -m experiments.baselines"
CONSTANT_ANSWER = "London"


@dataclass(frozen=True)
class Baselines:
    london: Score
    most_common_answer: str
    most_common: Score


def constant_baselines(questions_file: Path) -> Baselines:
    """Both constant answers scored on a question file with answers (DataError naming the file otherwise)."""
    questions = read_questions(questions_file, require_answers=True)
    answers = Counter(q.answer for q in questions)
    common, count = answers.most_common(1)[0]
    return Baselines(Score(answers[CONSTANT_ANSWER], len(questions)), common, Score(count, len(questions)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("questions", type=Path, help="question<TAB>place file")
    args = parser.parse_args(argv)
    try:
        baselines = constant_baselines(args.questions)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(baselines.london)
    print(f"Most common answer ({baselines.most_common_answer}): {baselines.most_common}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
