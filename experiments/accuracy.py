"""`python -m experiments.accuracy RUN_DIR... --label NAME...`: each run's dev accuracy in the evaluation's format.

    python -m experiments.accuracy runs/demo/vanilla/finetune runs/demo/vanilla/finetune_scratch \
        --label "pretrained, then finetuned" --label "no pretraining"

Reads RUN_DIR/accuracy.json (written by the evaluation) and prints `LABEL: Correct: N out of M: X%`,
so `make demo` ends with the two numbers the experiment is about. A run without a readable
accuracy.json is an error line naming the file; the others are still printed, and the exit is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from launcher.evaluate import Score

PROG = "python -m experiments.accuracy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--label", action="append", default=[], help="a name per run directory, in order")
    args = parser.parse_args(argv)
    status = 0
    for i, run_dir in enumerate(args.run_dirs):
        label = args.label[i] if i < len(args.label) else str(run_dir)
        try:
            result = json.loads((run_dir / "accuracy.json").read_text(encoding="utf-8"))
            print(f"{label}: {Score(result['correct'], result['total'])}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: {run_dir / 'accuracy.json'}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
