"""`python -m launcher.sweep SCALE_DIR --out DIR`: the paper's grid, run by run on this machine.

    python -m launcher.sweep configs/demo --data worlds/sweep --out runs/sweep/synthetic --seeds 0 1 2
    python -m launcher.sweep configs --data datasets/birthplaces --out runs/sweep/spec --procs 8

SCALE_DIR holds the phase configs that fix the model size and schedule: pretrain.yaml,
finetune.yaml (from the pretrained export) and finetune_scratch.yaml (no pretraining); `configs/`
is SPEC's, `configs/demo/` the CPU demo's, `configs/reduced/` the real data's one-hour CPU schedule.
`--data DIR` points every phase at a data set in the real format (wiki.txt, birth_places_train.tsv,
birth_dev.tsv). For each variant and seed it runs pretrain -> finetune and the no-pretraining
baseline into DIR/<variant>/seed<seed>/<phase>, each through torchrun (one process per GPU, or
--procs CPU processes), with its output in DIR/logs/. Every config is validated before the first
run starts. A run whose directory already holds a completed run of the same config is skipped, so
an interrupted sweep continues where it stopped; a directory holding a different config is refused.
DIR/sweep.json records the grid and the command, for the report (python -m launcher.report).
On a SLURM cluster, slurm/sweep.sh submits the same grid as chained jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from data.atomic import write_text_atomically  # noqa: E402
from launcher.config import ConfigError, RunConfig, load_config, to_yaml  # noqa: E402
from launcher.run_record import RECORD_NAME, read_attempts, source_commit  # noqa: E402

PROG = "python -m launcher.sweep"
VARIANTS = ("vanilla", "synthesizer", "perceiver", "rope")
SETTINGS = ("scratch", "pretrained")
DATA_FILES = {"corpus": "wiki.txt", "finetune": "birth_places_train.tsv", "questions": "birth_dev.tsv"}
TRAIN_SCRIPT = Path(__file__).resolve().parent / "train.py"


@dataclass(frozen=True)
class Run:
    """One launch of launcher/train.py: a phase of one (variant, seed) cell of the grid."""

    variant: str
    seed: int
    phase_config: str  # pretrain, finetune or finetune_scratch
    configs: tuple[Path, ...]
    overrides: tuple[str, ...]
    config: RunConfig

    @property
    def name(self) -> str:
        return f"{self.variant} seed {self.seed} {self.phase_config}"

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)


def cell_dir(out: Path, variant: str, seed: int) -> Path:
    return out / variant / f"seed{seed}"


def data_overrides(data: Path | None, phase_config: str) -> list[str]:
    """--data DIR as config overrides: the corpus where the phase reads one (finetuning a pretrained
    export takes the vocabulary from the export), the question files where it finetunes."""
    if data is None:
        return []
    corpus = f"data.corpus={data / DATA_FILES['corpus']}"
    questions = [f"data.finetune={data / DATA_FILES['finetune']}", f"eval.questions={data / DATA_FILES['questions']}"]
    return {"pretrain": [corpus], "finetune": questions, "finetune_scratch": [corpus, *questions]}[phase_config]


def phase_configs(settings: list[str]) -> list[str]:
    """The runs of one grid cell, in execution order: a finetune needs its pretrain before it."""
    return (["pretrain", "finetune"] if "pretrained" in settings else []) + \
        (["finetune_scratch"] if "scratch" in settings else [])


def plan_runs(scale: Path, out: Path, variants: list[str], seeds: list[int], settings: list[str],
              data: Path | None, overrides: list[str]) -> list[Run]:
    """Every run of the grid in execution order, each config loaded and validated (ConfigError otherwise)."""
    phases = phase_configs(settings)
    runs = []
    for variant in variants:
        for seed in seeds:
            cell = cell_dir(out, variant, seed)
            for phase_config in phases:
                path = scale / f"{phase_config}.yaml"
                sets = [*data_overrides(data, phase_config), *overrides,
                        f"model.variant={variant}", f"seed={seed}", f"run_dir={cell / phase_config}"]
                if phase_config == "finetune":
                    sets.append(f"init_from={cell / 'pretrain' / 'export'}")
                config = load_config([path], sets)
                runs.append(Run(variant, seed, phase_config, (path,), tuple(sets), config))
    return runs


def check_data(data: Path) -> None:
    for name in DATA_FILES.values():
        if not (data / name).is_file():
            raise ConfigError(f"--data {data}: no {name} (a data set in the real format has "
                              f"{', '.join(DATA_FILES.values())})")


def state_of(run: Run) -> str:
    """"new", "done" (a completed run of this very config) or "partial" (same config, to resume)."""
    saved = run.run_dir / "config.yaml"
    if not saved.is_file():
        return "new"
    mine = yaml.safe_load(to_yaml(run.config))
    theirs = yaml.safe_load(saved.read_text(encoding="utf-8"))
    if theirs != mine:
        key = first_difference(theirs, mine)
        raise ConfigError(f"{run.run_dir}: holds a run with a different config ({key}); "
                          f"choose another --out or remove that directory")
    attempts = read_attempts(run.run_dir / RECORD_NAME)
    done = any(a.get("completed") for a in attempts)
    if done and run.config.eval.questions is not None and not (run.run_dir / "accuracy.json").is_file():
        done = False
    return "done" if done else "partial"


def first_difference(old, new, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: {old!r} there, {new!r} now"


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


def default_procs() -> int:
    """One process per GPU; on CPUs two (each takes half of the cores), as `make demo` runs."""
    import torch

    return torch.cuda.device_count() or 2


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def write_manifest(out: Path, args: argparse.Namespace, argv: list[str], procs: int) -> None:
    manifest = {
        "label": args.label,
        "scale": str(args.scale),
        "data": str(args.data) if args.data else None,
        "variants": args.variants,
        "seeds": args.seeds,
        "settings": args.settings,
        "procs": procs,
        "overrides": args.overrides,
        "command": args.recorded_command or shlex.join(["python", "-m", "launcher.sweep", *argv]),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": source_commit(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "sweep.json", json.dumps(manifest, indent=1) + "\n")


def run_all(runs: list[Run], out: Path, procs: int) -> int:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    width = len(str(len(runs)))
    for index, run in enumerate(runs, 1):
        prefix = f"[{index:>{width}}/{len(runs)}] {run.name}"
        if state_of(run) == "done":
            print(f"{prefix}: done earlier, skipped", flush=True)
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
        result = ""
        accuracy = run.run_dir / "accuracy.json"
        if accuracy.is_file():
            score = json.loads(accuracy.read_text(encoding="utf-8"))
            result = f", dev {score['correct']}/{score['total']} = {100 * score['accuracy']:.1f}%"
        print(f"{prefix}: {elapsed}{result}", flush=True)
    print(f"sweep complete: {len(runs)} runs under {out}; report: python -m launcher.report {out}", flush=True)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("scale", type=Path, help="directory with pretrain.yaml, finetune.yaml, finetune_scratch.yaml")
    parser.add_argument("--out", type=Path, required=True, help="sweep directory: <variant>/seed<seed>/<phase> inside")
    parser.add_argument("--data", type=Path, help="data set in the real format (wiki.txt and the TSV files)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS,
                        help="pretrained: pretrain then finetune; scratch: finetune from random weights")
    parser.add_argument("--procs", type=int, help="processes per run (default: one per GPU, or 2 on CPUs)")
    parser.add_argument("--label", default="", help="the report's title for this sweep, e.g. 'real data, reduced schedule'")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a config key in every run, e.g. train.precision=bf16")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the runs' commands, run nothing")
    parser.add_argument("--plan", action="store_true",
                        help="validate, write sweep.json and print one line per run for slurm/sweep.sh: "
                             "state, cell, phase, run_dir, config, overrides (tab-separated)")
    parser.add_argument("--command", dest="recorded_command", help=argparse.SUPPRESS)  # slurm/sweep.sh's own command line
    args = parser.parse_args(argv)
    if args.plan and args.dry_run:
        parser.error("--plan and --dry-run exclude each other (slurm/sweep.sh passes --plan itself)")
    if args.procs is not None and args.procs < 1:
        parser.error(f"--procs: must be at least 1 (got {args.procs})")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        for name in ("pretrain", "finetune", "finetune_scratch"):
            if not (args.scale / f"{name}.yaml").is_file():
                raise ConfigError(f"{args.scale}: no {name}.yaml (a sweep's scale directory holds "
                                  f"pretrain.yaml, finetune.yaml and finetune_scratch.yaml)")
        if args.data is not None:
            check_data(args.data)
        runs = plan_runs(args.scale, args.out, args.variants, sorted(set(args.seeds)), args.settings, args.data, args.overrides)
        for run in runs:
            state_of(run)  # refuses a directory holding a different config before anything runs
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    procs = args.procs or default_procs()
    if args.dry_run:
        for run in runs:
            print(shlex.join(launch_command(run, procs)))
        return 0
    write_manifest(args.out, args, argv, procs)
    if args.plan:
        for run in runs:
            fields = [state_of(run), f"{run.variant}-s{run.seed}", run.phase_config, str(run.run_dir),
                      *map(str, run.configs), "--set", *run.overrides]
            print("\t".join(fields))
        return 0
    return run_all(runs, args.out, procs)


if __name__ == "__main__":
    sys.exit(main())
