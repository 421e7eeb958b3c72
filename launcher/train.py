"""spangpt's one entry point: pretrain, finetune or evaluate, as the config's `phase` says.

    deepspeed launcher/train.py --config configs/pretrain.yaml [--set key=value ...]
    torchrun --nproc_per_node 2 launcher/train.py --config ...
    srun launcher/train.py --config ...      (rank from SLURM_PROCID / SLURM_NTASKS)
    python launcher/train.py --config ...    (world size 1)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.errors import DataError  # noqa: E402
from launcher import distributed  # noqa: E402
from launcher.config import ConfigError, load_config  # noqa: E402
from launcher.run_record import AttemptClock  # noqa: E402


CONFIG_ERROR_GRACE_SECONDS = 5.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="spangpt: pretrain, finetune or evaluate from a YAML config")
    parser.add_argument("--config", required=True, nargs="+", help="YAML config(s), later ones merged over earlier (overlays)")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.zero_stage=3 model.variant=rope")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        context = distributed.detect_context()
    except ValueError as exc:  # a launcher variable that cannot be read, e.g. a malformed SLURM nodelist
        print(f"error: {exc}", file=sys.stderr)  # every rank reads the same variables: no rank knows it is 0
        return 2
    status = 1
    try:
        status = run(args, context)
    finally:
        if status:  # an exception too: slurm.node stops a torchrun that outlives its failed trainers
            distributed.note_failure(context, status)
    return status


def run(args: argparse.Namespace, context: distributed.DistributedContext) -> int:
    """The phase, with every expected failure one line and a non-zero status."""
    clock = AttemptClock(read_commit=context.is_main, launcher=context.launcher)  # run.json: from this process's start to the phase's end
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        if context.is_main:
            print(f"error: {exc}", file=sys.stderr)
        else:  # rank 0 reads the same config and fails the same way: let it print before torchrun stops the group
            time.sleep(CONFIG_ERROR_GRACE_SECONDS)
        return 2
    distributed.prepare_environment(context, config.distributed.device)
    from launcher.phases import PHASES  # imports DeepSpeed, after the environment is set

    try:
        device = distributed.start(context, config.distributed.backend, config.distributed.timeout_minutes,
                                   config.distributed.device)
        completed = PHASES[config.phase](config, context, device)
        clock.record(Path(config.run_dir), config.phase, completed, context, device)
    except (ConfigError, DataError) as exc:
        if context.is_main:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an output that cannot be written (full disk, read-only file system)
        if context.is_main:
            print(f"error: {exc.filename or 'output'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a collective that lost its peers: every rank says so, each its own way
        line = distributed.collective_failure(exc, config.distributed.timeout_minutes)
        if line is None:
            raise
        print(f"error: rank {context.rank}: {line}", file=sys.stderr, flush=True)
        return 1
    finally:
        distributed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
