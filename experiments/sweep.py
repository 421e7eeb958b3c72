"""`python -m experiments.sweep SCALE_DIR --out DIR`: the paper's grid, run by run on this machine.

    python -m experiments.sweep configs/demo --data worlds/sweep --out runs/sweep/synthetic --seeds 0 1 2
    python -m experiments.sweep configs --data datasets/birthplaces --out runs/sweep/spec --procs 8

SCALE_DIR holds the phase configs that fix the model size and schedule: pretrain.yaml,
finetune.yaml (from the pretrained export) and finetune_scratch.yaml (no pretraining); `configs/`
holds the reference configs, `configs/demo/` the CPU demo's, `configs/reduced/` the real data's
one-hour CPU schedule. `--data DIR` points every phase at a data set in the real format (wiki.txt,
birth_places_train.tsv, birth_dev.tsv). For each variant and seed it runs pretrain -> finetune and
the no-pretraining baseline into DIR/<variant>/seed<seed>/<phase>, each through torchrun (one
process per GPU, or --procs CPU processes), with its output in DIR/logs/. Every config is validated
before the first run starts. A run whose directory already holds a completed run of the same config
is skipped, so an interrupted sweep continues where it stopped; `--pretrained-from DIR` finetunes
from another sweep's completed pretraining runs (same configs) instead of pretraining again; after each pretrained cell's
finetune, what its pretraining stored is measured on the dev questions (experiments.memorization)
into the pretrain run's memorization.json (the cell's own, for a borrowed pretraining); a directory holding a different
config, or a run.json that cannot be read, is refused. DIR/sweep.json records the grid and the
command, for the report (python -m experiments.report). On a SLURM cluster, slurm/sweep.sh submits
the same grid as chained jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import launcher
from data.atomic import write_text_atomically
from data.errors import DataError
from experiments.grid import (SETTINGS, Run, check_data, check_inputs, check_scale, memorization_files, plan_runs,
                              read_memorization, state_of, variant_names)
from launcher.config import ConfigError
from launcher.distributed import processes_per_node
from launcher.run_record import source_commit

PROG = "python -m experiments.sweep"
REPORT_PROG = "python -m experiments.report"
# Runs are launched by path, as a user launches them: launcher/train.py stays the one entry point.
TRAIN_SCRIPT = Path(launcher.__file__).resolve().parent / "train.py"


def launch_command(run: Run, procs: int) -> list[str]:
    args = [str(TRAIN_SCRIPT), "--config", *map(str, run.configs), "--set", *run.overrides]
    if procs == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *args]


def last_error_line(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith("error:"):
            return line.removeprefix("error: ")
    return next((line for line in reversed(lines) if line.strip()), "no output")


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def write_manifest(out: Path, args: argparse.Namespace, argv: list[str], procs: int) -> None:
    """DIR/sweep.json: the grid and the command that made it, which the report prints."""
    manifest = {
        "label": args.label,
        "scale": str(args.scale),
        "data": str(args.data) if args.data else None,
        "variants": args.variants,
        "seeds": args.seeds,
        "settings": args.settings,
        "procs": procs,
        "overrides": args.overrides,
        "pretrained_from": str(args.pretrained_from) if args.pretrained_from else None,
        "command": args.recorded_command or shlex.join([*PROG.split(), *argv]),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": source_commit(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "sweep.json", json.dumps(manifest, indent=1) + "\n")


def record_memorization(finetune: Run, runs: list[Run]) -> str:
    """After a pretrained cell's finetune: what its pretraining stored, measured on the questions the
    finetune answered (experiments.memorization), written where grid.memorization_files says for the
    report. Returns what to add to the run's line; empty when the questions carry no answers."""
    from data.birthplaces import read_questions
    from experiments.memorization import measure, write_measurement

    pretrain = next(r for r in runs if (r.variant, r.seed, r.phase_config) == (finetune.variant, finetune.seed, "pretrain"))
    questions = finetune.config.eval.questions
    if questions is None or read_questions(questions, require_answers=False)[0].answer is None:
        return ""
    files = memorization_files(finetune.run_dir.parent, pretrain.run_dir)
    earlier = read_memorization(files, questions)
    if earlier is not None:  # measured earlier on these questions (by this sweep, or the one that lent the pretraining)
        correct, total = earlier["recall"]["continue"]["correct"], earlier["recall"]["continue"]["total"]
    else:
        try:
            results, asked, skipped = measure(Path(finetune.config.init_from), Path(pretrain.config.data.corpus),
                                              Path(questions))
        except DataError as exc:  # e.g. no dev person has a document stating the answer: nothing to measure
            return f", memorization not measured ({exc})"
        write_measurement(files[0], questions, results, asked, skipped)
        correct, total = results[0].correct, results[0].total  # the continue form
    return f", pretraining recalls {correct}/{total} birth places from their own documents"


def run_all(runs: list[Run], out: Path, procs: int) -> int:
    """Each run in order, skipping completed ones; the first failure stops the sweep with its error line."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    width = len(str(len(runs)))
    for index, run in enumerate(runs, 1):
        prefix = f"[{index:>{width}}/{len(runs)}] {run.name}"
        try:
            state = state_of(run)
        except ConfigError as exc:  # changed on disk since the sweep checked it
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
        if state == "done":  # a measurement it lacks (cut off, or made before this sweep's questions) is made now
            stored = record_memorization(run, runs) if run.phase_config == "finetune" else ""
            print(f"{prefix}: done earlier, skipped{stored}", flush=True)
            continue
        log = logs / f"{run.variant}-seed{run.seed}-{run.phase_config}.log"
        started = time.perf_counter()
        with open(log, "a", encoding="utf-8") as sink:
            status = subprocess.run(launch_command(run, procs), stdout=sink, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
        elapsed = format_seconds(time.perf_counter() - started)
        if status != 0:
            print(f"error: {prefix} failed (exit {status}) after {elapsed}: {last_error_line(log)} (log: {log})",
                  file=sys.stderr, flush=True)
            return 1
        stored = record_memorization(run, runs) if run.phase_config == "finetune" else ""
        result = ""
        accuracy = run.run_dir / "accuracy.json"
        if accuracy.is_file():
            score = json.loads(accuracy.read_text(encoding="utf-8"))
            result = f", dev {score['correct']}/{score['total']} = {100 * score['accuracy']:.1f}%"
        print(f"{prefix}: {elapsed}{result}{stored}", flush=True)
    print(f"sweep complete: {len(runs)} runs under {out}; report: {REPORT_PROG} {out}", flush=True)
    return 0


def check_borrowed_pretraining(runs: list[Run], states: list[str], source: Path) -> None:
    """--pretrained-from: every pretraining must be complete there; this sweep never writes into another
    sweep's runs (a different config there is already refused by state_of, naming the key)."""
    for run, state in zip(runs, states):
        if run.phase_config == "pretrain" and state != "done":
            raise ConfigError(f"--pretrained-from {source}: {run.run_dir} holds no completed pretraining "
                              f"({state}); run that sweep first")


def parse_args(argv: list[str]) -> argparse.Namespace:
    variants = variant_names()  # the registry as it is now, so a variant registered late is a choice
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("scale", type=Path, help="directory with pretrain.yaml, finetune.yaml, finetune_scratch.yaml")
    parser.add_argument("--out", type=Path, required=True, help="sweep directory: <variant>/seed<seed>/<phase> inside")
    parser.add_argument("--data", type=Path, help="data set in the real format (wiki.txt and the TSV files)")
    parser.add_argument("--variants", nargs="+", default=variants, choices=variants)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS,
                        help="pretrained: pretrain then finetune; scratch: finetune from random weights")
    parser.add_argument("--procs", type=int, help="processes per run (default: one per GPU, or 2 on CPUs)")
    parser.add_argument("--label", default="",
                        help="the report's title for this sweep, e.g. 'real data, reduced schedule'")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a config key in every run, e.g. train.precision=bf16, or in one phase's "
                             "runs: PHASE:KEY=VALUE with PHASE pretrain, finetune or finetune_scratch, "
                             "e.g. pretrain:train.epochs=90")
    parser.add_argument("--pretrained-from", type=Path, metavar="SWEEP_DIR",
                        help="finetune from the completed pretraining runs of that sweep directory instead of "
                             "pretraining again; their configs must be what this sweep would run (so only "
                             "finetune: and finetune_scratch: overrides may differ)")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the runs' commands, run nothing")
    parser.add_argument("--plan", action="store_true",
                        help="validate, write sweep.json and print one line per run for slurm/sweep.sh: "
                             "state, cell, phase, run_dir, config, overrides (tab-separated)")
    # slurm/sweep.sh's own command line, recorded in sweep.json instead of this module's
    parser.add_argument("--command", dest="recorded_command", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plan and args.dry_run:
        parser.error("--plan and --dry-run exclude each other (slurm/sweep.sh passes --plan itself)")
    if args.pretrained_from is not None and "pretrained" not in args.settings:
        parser.error("--pretrained-from: needs the pretrained setting (--settings scratch runs no finetune from it)")
    if args.procs is not None and args.procs < 1:
        parser.error(f"--procs: must be at least 1 (got {args.procs})")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        check_scale(args.scale)
        if args.data is not None:
            check_data(args.data)
        runs = plan_runs(args.scale, args.out, args.variants, sorted(set(args.seeds)), args.settings, args.data,
                         args.overrides, args.pretrained_from)
        check_inputs(runs)  # every question file against its corpus's vocabulary, before any pretraining
        states = [state_of(run) for run in runs]  # refuses a directory it cannot continue before anything runs
        if args.pretrained_from is not None:
            check_borrowed_pretraining(runs, states, args.pretrained_from)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    procs = args.procs or processes_per_node()
    if args.dry_run:
        for run in runs:
            print(shlex.join(launch_command(run, procs)))
        return 0
    write_manifest(args.out, args, argv, procs)
    if args.plan:
        for run, state in zip(runs, states):
            fields = [state, f"{run.variant}-s{run.seed}", run.phase_config, str(run.run_dir),
                      *map(str, run.configs), "--set", *run.overrides]
            print("\t".join(fields))
        return 0
    return run_all(runs, args.out, procs)


if __name__ == "__main__":
    sys.exit(main())
