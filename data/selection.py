"""`python -m data.selection DATA_DIR OUT_DIR`: hold out training questions as a selection set.

Recipes and hyperparameters are chosen on questions held out from the finetuning file, never on the
dev file, which is scored once for the final table (and the test file never). OUT_DIR is a data set
in the real format that a sweep reads with `--data OUT_DIR`: `birth_places_train.tsv` holds the
training questions that were not held out, `birth_dev.tsv` the held-out selection questions (so
every "dev" accuracy of a sweep over OUT_DIR is a selection accuracy), and `wiki.txt` links to the
original corpus. No dev or test question of DATA_DIR enters OUT_DIR. `selection.json` records the
source, seed and sizes. The split is a function of (file, holdout, seed) only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

from data.atomic import atomic_directory
from data.birthplaces import read_questions, split_lines
from data.errors import DataError

TRAIN, SELECTION, CORPUS = "birth_places_train.tsv", "birth_dev.tsv", "wiki.txt"


def held_out_lines(count: int, holdout: int, seed: int) -> set[int]:
    """Indices of the held-out lines: a seeded sample, the same on every machine."""
    return set(random.Random(f"spangpt-selection:{seed}").sample(range(count), holdout))


def write_selection(data_dir: str | os.PathLike, out_dir: str | os.PathLike, holdout: int, seed: int,
                    overwrite: bool = False) -> dict:
    """Split DATA_DIR's finetuning file into OUT_DIR's training and selection files; returns the manifest."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    source = data_dir / TRAIN
    questions = read_questions(source, require_answers=True)  # every line checked, one error naming it
    if not (data_dir / CORPUS).is_file():
        raise DataError(str(data_dir / CORPUS), "corpus not found (a data set in the real format has wiki.txt)")
    if not 1 <= holdout < len(questions):
        raise DataError(str(source), f"cannot hold out {holdout} of its {len(questions)} questions "
                                     f"(--holdout must be 1 to {len(questions) - 1})")
    lines = split_lines(source.read_text(encoding="utf-8"))
    held = held_out_lines(len(lines), holdout, seed)
    manifest = {"source": str(source), "seed": seed, "holdout": holdout, "train": len(lines) - holdout,
                "note": f"{SELECTION} holds training questions held out for selection, not the dev set"}
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        (staging / TRAIN).write_text("".join(f"{line}\n" for i, line in enumerate(lines) if i not in held), encoding="utf-8")
        (staging / SELECTION).write_text("".join(f"{line}\n" for i, line in enumerate(lines) if i in held), encoding="utf-8")
        (staging / CORPUS).symlink_to((data_dir / CORPUS).resolve())
        (staging / "selection.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.selection", description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="a data set in the real format (wiki.txt, birth_places_train.tsv)")
    parser.add_argument("out_dir", help="the selection data set to create")
    parser.add_argument("--holdout", type=int, default=200, help="training questions to hold out (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    args = parser.parse_args(argv)
    try:
        manifest = write_selection(args.data_dir, args.out_dir, args.holdout, args.seed, args.force)
    except (DataError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out_dir}: {manifest['train']} training questions in {TRAIN}, {manifest['holdout']} held out "
          f"for selection in {SELECTION} (seed {args.seed}); sweep over it with --data {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
