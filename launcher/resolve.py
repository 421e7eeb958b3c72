"""`python -m launcher.resolve KEY --config ... [--set ...]`: one value of the resolved config.

The SLURM scripts use it to find a phase's run directory (placeholders filled, overrides applied)
before the run starts, so logs and the next phase's init_from point at the right place.
"""

from __future__ import annotations

import argparse
import sys

from launcher.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("key", help="a dotted key, e.g. run_dir or train.zero_stage")
    parser.add_argument("--config", required=True, nargs="+")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[])
    args = parser.parse_args(argv)
    try:
        value = load_config(args.config, args.overrides)
        for part in args.key.split("."):
            value = getattr(value, part)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AttributeError:
        print(f"error: {args.key}: no such config key", file=sys.stderr)
        return 2
    print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
