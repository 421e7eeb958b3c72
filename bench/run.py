"""`make bench` (`python -m bench.run`): spangpt's speed and memory as ratios against baselines run here.

Prints the machine, then one table: training throughput against SPEC's reference loop, scaling
from 1 to 2 ranks, batched evaluation against the one-question loop, memory per ZeRO stage, and
the loader against what training consumes. `--only` picks benchmarks; `--json FILE` keeps the
figures. Every ratio compares two measurements taken in this run, on this machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from importlib.metadata import version
from pathlib import Path

import torch

from bench import evaluation, loader, training
from launcher.distributed import free_port
from launcher.run_record import cpu_model, source_commit
from bench.common import DataSet, Row, cores, data_set, last_json_line, print_table, run_checked, scratch_directory

BENCHMARKS = ("training", "scaling", "evaluation", "memory", "data")
MB = 1e6


def machine_line(data: DataSet) -> str:
    """Every benchmark here runs on CPUs, also on a GPU machine (bench/common.child_env hides GPUs)."""
    device = f"CPU, {cores()} cores ({cpu_model()})"
    return (f"{datetime.date.today()}  commit {source_commit() or '?'}  {device}  torch {torch.__version__}  "
            f"deepspeed {version('deepspeed')}  data: {data.kind} ({data.directory})")


def training_rates(data: DataSet, scratch: Path, steps: int, repeats: int, chosen: set[str]) -> dict[str, float]:
    """Tokens/s of each training set-up: the best of `repeats` runs, taken in turn (ABC ABC), so a
    slow spell of this shared machine hits every set-up alike and the best run shows each one's speed."""
    n = cores()
    setups = {"spangpt, 1 rank": lambda d: training.spangpt_tokens_per_second(data, d, 1, n, steps)}
    if "training" in chosen:
        setups["reference loop"] = lambda d: training.reference_tokens_per_second(data, n, steps)
    if "scaling" in chosen and n >= 2:
        setups["spangpt, 2 ranks"] = lambda d: training.spangpt_tokens_per_second(data, d, 2, n // 2, steps)
        if n == 2:
            setups["spangpt, 1 rank, 1 thread"] = lambda d: training.spangpt_tokens_per_second(data, d, 1, 1, steps)
    runs: dict[str, list[float]] = {name: [] for name in setups}
    for repeat in range(repeats):
        for index, (name, measure) in enumerate(setups.items()):
            runs[name].append(measure(scratch / f"train-{repeat}-{index}"))
            print(f"  {name}: {runs[name][-1]:,.0f} tokens/s", file=sys.stderr, flush=True)
    return {name: max(rates) for name, rates in runs.items()} | {"runs": runs}


def training_rows(rates: dict, chosen: set[str]) -> list[Row]:
    n = cores()
    one = rates["spangpt, 1 rank"]
    rows = []
    if "reference loop" in rates:
        reference = rates["reference loop"]
        rows.append(Row(f"training, SPEC size, 1 rank x {n} threads, ZeRO 0 fp32 (tokens/s)",
                        f"{one:,.0f}", f"{reference:,.0f} (reference loop)", one / reference, 1.0))
    if "spangpt, 2 ranks" in rates:
        two = rates["spangpt, 2 ranks"]
        rows.append(Row(f"scaling, 2 ranks x {n // 2} vs 1 rank x {n} threads, same batch (tokens/s)",
                        f"{two:,.0f}", f"{one:,.0f}", two / one, 1.6))
        if "spangpt, 1 rank, 1 thread" in rates:  # per core: what a rank gains over one rank with one thread
            single = rates["spangpt, 1 rank, 1 thread"]
            rows.append(Row("scaling per core, 2 ranks x 1 vs 1 rank x 1 thread (tokens/s)",
                            f"{two:,.0f}", f"{single:,.0f}", two / single, None))
    return rows


def evaluation_rows(data: DataSet, export: Path | None, limit: int | None, results: dict) -> list[Row]:
    torch.set_num_threads(cores())
    result = evaluation.run(data, export, limit)
    ours = result.questions / result.spangpt_seconds
    theirs = result.questions / result.baseline_seconds
    results["evaluation"] = vars(result)
    same = f"{result.identical}/{result.questions} identical"
    goal = 20.0 if result.identical == result.questions else float("inf")  # unequal predictions fail it
    return [Row(f"evaluation, {data.dev.name}, {result.model}; {same} (questions/s)",
                f"{ours:,.1f}", f"{theirs:,.1f} (one-question loop)", ours / theirs, goal)]


def memory_rows(results: dict) -> list[Row]:
    """Per-rank state at ZeRO 1-3 against ZeRO 0. Every precision keeps fp32 weights, gradients and
    optimizer state (launcher/precision.py), so one precision measures them all."""
    rows = []
    measured = {}
    for stage in range(4):
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                   "--master_port", str(free_port()), "-m", "bench.zero_memory", str(stage)]
        measured[stage] = last_json_line(run_checked(command, threads=1))["bytes"]
    results["memory"] = measured
    total0 = sum(measured[0].values())
    for stage in range(1, 4):
        b = measured[stage]
        parts = f"P {b['parameters'] / MB:.1f} + G {b['gradients'] / MB:.1f} + O {b['optimizer state'] / MB:.1f}"
        rows.append(Row(f"memory per rank (of 2), ZeRO {stage} vs 0 (MB)",
                        f"{parts} = {sum(b.values()) / MB:.1f}", f"{total0 / MB:.1f}",
                        sum(b.values()) / total0, 0.55 if stage == 3 else None, at_most=True))
    return rows


def data_rows(data: DataSet, results: dict) -> list[Row]:
    rates = loader.measure(data)
    results["loader_examples_per_second"] = rates
    training_rates = results.get("training", {})
    # the fastest consumer per rank: one rank with every thread, or one of two ranks
    consumed = max(training_rates.get("spangpt, 1 rank", 0), training_rates.get("spangpt, 2 ranks", 0) / 2) / 127
    rows = []
    for phase, rate in rates.items():
        if consumed:
            rows.append(Row(f"loader, {phase}, 1 thread, rank 0 of 2 (examples/s vs one rank's training)",
                            f"{rate:,.0f}", f"{consumed:,.1f}", rate / consumed, 1.0))
        else:
            rows.append(Row(f"loader, {phase}, 1 thread (examples/s; run training for the ratio)",
                            f"{rate:,.0f}", "-", float("nan"), None))
    ahead = loader.worker_path(data, cores())
    results["loader_worker_path"] = ahead
    same = f"{ahead['identical_micro_batches']}/{ahead['compared_micro_batches']} micro-batches identical"
    goal = 1.0 if ahead["identical_micro_batches"] == ahead["compared_micro_batches"] else float("inf")
    rows.append(Row(f"loader, pretraining, {ahead['workers']} worker processes (data.workers) vs in step; {same} (examples/s)",
                    f"{ahead['examples_per_second']:,.0f}", f"{ahead['in_step_examples_per_second']:,.0f} (in step)",
                    ahead["examples_per_second"] / ahead["in_step_examples_per_second"], goal))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per training run (the first 2 are warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each training set-up; the best counts")
    parser.add_argument("--export", type=Path, help="a trained export for the evaluation benchmark (default: untrained SPEC model)")
    parser.add_argument("--questions", type=int, help="evaluate only the first N dev questions")
    parser.add_argument("--json", type=Path, help="also write the measured figures here")
    args = parser.parse_args(argv)
    if args.steps <= training.WARMUP_STEPS:
        parser.error(f"--steps must be more than the {training.WARMUP_STEPS} warm-up steps")
    chosen = set(args.only)
    results: dict = {}
    rows: list[Row] = []
    with scratch_directory() as scratch:
        data = data_set(Path(scratch))
        print(machine_line(data), flush=True)
        if chosen & {"training", "scaling", "data"}:
            results["training"] = training_rates(data, Path(scratch), args.steps, args.repeats, chosen)
            rows += training_rows(results["training"], chosen)
        if "evaluation" in chosen:
            rows += evaluation_rows(data, args.export, args.questions, results)
        if "memory" in chosen:
            rows += memory_rows(results)
        if "data" in chosen:
            rows += data_rows(data, results)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
