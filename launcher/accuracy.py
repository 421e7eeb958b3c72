"""`python -m launcher.accuracy RUN_DIR...`: each run's accuracy.json in the evaluation's format."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from launcher.evaluate import Score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--label", action="append", default=[], help="a name per run directory, in order")
    args = parser.parse_args(argv)
    status = 0
    for i, run_dir in enumerate(args.run_dirs):
        label = args.label[i] if i < len(args.label) else str(run_dir)
        try:
            result = json.loads((run_dir / "accuracy.json").read_text(encoding="utf-8"))
            print(f"{label}: {Score(result['correct'], result['total'])}")
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {run_dir / 'accuracy.json'}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
