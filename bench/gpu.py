"""The GPU runbook's measuring parts (bench/gpu.sh runs them): the machine, a smoke, a benchmark.

    python -m bench.gpu machine                                      versions, GPU, nvidia-smi
    python -m bench.gpu smoke --data DIR --steps 30 --budget 90      every variant x precision, universal resume
    python -m bench.gpu bench --data DIR --steps 300 --budget 120    tokens/s, MFU, full-pretraining time, loader

Every run is the real launcher (launcher/train.py, world size 1: NCCL on a GPU, gloo on a CPU, fused
AdamW on CUDA) at SPEC's model size and batch (configs/pretrain.yaml), with data.workers (pinned
copies on a GPU); the trainer itself stops a run whose Linear layers do not compute in the
precision's dtype, so a smoke row that finished passed that check. The smoke runs its runs
together, to fail fast, and adds a ZeRO-1 run resumed through DeepSpeed's universal checkpoint at
world size 1, in fp16 (the optimizer state is checked to sit on its parameter's device after loading). The
benchmark runs one after another, the most wanted rows first (bf16 for every variant, then the
other precisions), so each has the device to itself. Tokens/s is the steady rate after the first
logging window. MFU counts each variant's own matmul FLOPs over the positions a step computes
(bench/mfu.py) against the GPU's dense peak, looked up by its exact name, and against a matrix
product measured in the same run, which is what this GPU actually sustains.

`--budget SECONDS` is a deadline: no run starts that cannot end before it, a run still going at
the deadline is stopped, and the JSON file is rewritten after every row, so a stage cut short keeps
what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import torch

from bench.common import ROOT, DataSet
from experiments.grid import variant_names
from launcher.precision import PRECISIONS
from launcher.run_record import source_commit

SPEC_TOKENS = 242_500_000  # SPEC's pretraining: 14,915 steps of 128 x 127 target positions (docs/experiment.md)
# The benchmark's order: what the runbook's first call most needs first (every variant in bf16).
BENCH_ORDER = ("bf16", "fp32", "tf32", "fp16")


class Deadline:
    """The stage's --budget: seconds left, and whether a run of `expected` seconds still fits."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()

    def fits(self, expected: float) -> bool:
        left = self.left()
        return left is None or left > expected


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def machine() -> dict:
    smi = shutil.which("nvidia-smi")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": source_commit(),
        "device": device_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "deepspeed": version("deepspeed"),
        "nvidia-smi": subprocess.run([smi], capture_output=True, text=True).stdout if smi else "not found",
    }


def train_command(data: DataSet, run_dir: Path, variant: str, precision: str, steps: int, log_every: int,
                  workers: int, overrides: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "launcher" / "train.py"), "--config", str(ROOT / "configs" / "pretrain.yaml"),
            "--set", f"run_dir={run_dir}", f"data.corpus={data.corpus}", f"model.variant={variant}",
            f"train.precision={precision}", f"train.max_steps={steps}", f"train.log_every={log_every}",
            "train.resume=never", "train.checkpoint_every=0", f"data.workers={workers}", *overrides]


def run_one(data: DataSet, run_dir: Path, variant: str, precision: str, steps: int, log_every: int,
            workers: int, overrides: list[str], deadline: Deadline, fresh: bool = True) -> dict:
    """One launcher run; its steady tokens/s and last loss from metrics.jsonl, or its last error line.
    A run still going at the deadline is stopped and reported as such."""
    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    left = deadline.left()
    try:
        result = subprocess.run(train_command(data, run_dir, variant, precision, steps, log_every, workers, overrides),
                                cwd=ROOT, capture_output=True, text=True, timeout=None if left is None else max(left, 1))
    except subprocess.TimeoutExpired:
        return {"variant": variant, "precision": precision, "steps": steps, "ok": False,
                "seconds": round(time.perf_counter() - started, 1), "error": "stopped at the stage's --budget"}
    seconds = time.perf_counter() - started
    row = {"variant": variant, "precision": precision, "steps": steps, "seconds": round(seconds, 1), "ok": result.returncode == 0,
           "resumed": "(resumed from " in result.stdout}
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        row["error"] = next((line for line in reversed(lines) if line.startswith("error:")),
                            f"exit {result.returncode}: {lines[-1] if lines else 'no output'}")
        return row
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    steady = [m["train/tokens_per_second"] for m in metrics[1:]] or [m["train/tokens_per_second"] for m in metrics]
    row["tokens_per_second"] = round(len(steady) / sum(1 / r for r in steady))  # tokens over time: harmonic mean
    row["final_loss"] = round(metrics[-1]["train/loss"], 4)
    if "train/skipped_steps" in metrics[-1]:
        row["skipped_steps"] = int(metrics[-1]["train/skipped_steps"])
    return row


class Rows:
    """Rows written to `path` as they come (threads append), so a stage cut short keeps what it finished."""

    def __init__(self, path: Path, extra: dict | None = None) -> None:
        self.path, self.extra, self.rows, self.lock = path, extra or {}, [], threading.Lock()
        self.write()

    def add(self, row: dict) -> dict:
        with self.lock:
            self.rows.append(row)
            self.write()
        print(json.dumps(row), flush=True)
        return row

    def write(self) -> None:
        payload = {**self.extra, "runs": self.rows} if self.extra else self.rows
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        temporary.replace(self.path)


def universal_resume(data: DataSet, runs: Path, steps: int, workers: int, overrides: list[str],
                     deadline: Deadline) -> dict:
    """A ZeRO-1 fp16 run that checkpoints halfway, then resumes through the universal format at world
    size 1 (train.resume_universal): the path that left fused AdamW's `step` on the CPU, with the ZeRO
    optimizers' own loss scale (launcher/loss_scale.py) saved and restored across it."""
    run_dir, half = runs / "smoke-universal-resume", max(1, steps // 2)
    zero1 = [*overrides, "train.zero_stage=1", f"train.checkpoint_every={half}"]
    row = run_one(data, run_dir, "vanilla", "fp16", half, max(1, half // 2), workers, zero1, deadline)
    if row["ok"]:
        row = run_one(data, run_dir, "vanilla", "fp16", steps, 1, workers,
                      [*zero1, "train.resume=required", "train.resume_universal=true"], deadline, fresh=False)
        row["universal"] = (run_dir / "checkpoints" / f"step{half:08d}_universal").is_dir()
        row["ok"] = row["ok"] and row["resumed"] and row["universal"]
    return {**row, "variant": "vanilla ZeRO-1 universal resume"}


def smoke(data: DataSet, out: Path, runs: Path, steps: int, parallel: int, workers: int, overrides: list[str],
          deadline: Deadline) -> list[dict]:
    """Every variant in every precision at once, and the universal resume beside them."""
    rows = Rows(out / "smoke.json")
    jobs = [(v, p) for v in variant_names() for p in PRECISIONS]

    def one(job):
        if job == "universal":
            return rows.add(universal_resume(data, runs, steps, workers, overrides, deadline))
        return rows.add(run_one(data, runs / f"smoke-{job[0]}-{job[1]}", *job, steps, max(1, steps // 4), workers,
                                overrides, deadline))

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, ["universal", *jobs]))
    return rows.rows


def matmul_ceiling(precision: str, size: int = 8192, repeats: int = 10) -> float | None:
    """TFLOP/s of a size^3 matrix product in `precision`, the mean of `repeats` after warm-up (GPU only)."""
    if not torch.cuda.is_available():
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    a, b = (torch.randn(size, size, device="cuda", dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def benchmark(data: DataSet, out: Path, runs: Path, steps: int, workers: int, overrides: list[str],
              deadline: Deadline, precisions: tuple[str, ...] = BENCH_ORDER) -> dict:
    from bench import loader
    from bench.mfu import model_flops_per_token, peak_tflops

    ceilings = {p: matmul_ceiling(p) for p in PRECISIONS}
    flops = {v: model_flops_per_token(v, data.corpus, overrides) for v in variant_names()}
    rows = Rows(out / "bench.json", {"machine": machine(), "matmul_tflops": ceilings, "model_flops_per_token": flops})
    expected = None  # seconds of the last finished run: the next one starts only if it fits
    for precision in precisions:
        for variant in variant_names():
            if expected is not None and not deadline.fits(expected):
                rows.add({"variant": variant, "precision": precision, "ok": False, "error": "not run: the --budget was spent"})
                continue
            row = run_one(data, runs / f"bench-{variant}-{precision}", variant, precision, steps, max(1, steps // 6),
                          workers, overrides, deadline)
            if row["ok"]:
                expected = row["seconds"]
                achieved = row["tokens_per_second"] * flops[variant] / 1e12
                row["model_tflops"] = round(achieved, 2)
                ceiling = peak_tflops(device_name(), precision)
                row["mfu_peak"] = round(achieved / ceiling, 4) if ceiling else None
                row["mfu_measured_ceiling"] = round(achieved / ceilings[precision], 4) if ceilings[precision] else None
                row["full_pretraining_seconds"] = round(SPEC_TOKENS / row["tokens_per_second"], 1)
            rows.add(row)
    if deadline.fits(15):
        rows.extra["loader"] = loader.worker_path(data, max(1, workers))
        rows.write()
    return {**rows.extra, "runs": rows.rows}


def table_lines(rows: list[dict]) -> list[str]:
    lines = ["| variant | precision | ok | tokens/s | MFU (peak) | MFU (measured matmul) | full pretraining (s) | final loss |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        mfu = lambda key: f"{100 * r[key]:.1f}%" if r.get(key) is not None else "-"  # noqa: E731
        lines.append(f"| {r['variant']} | {r.get('precision', '-')} | {'yes' if r['ok'] else r.get('error', 'no')} | "
                     f"{r.get('tokens_per_second', '-')} | {mfu('mfu_peak')} | {mfu('mfu_measured_ceiling')} | "
                     f"{r.get('full_pretraining_seconds', '-')} | {r.get('final_loss', '-')} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("machine", "smoke", "bench"))
    parser.add_argument("--data", type=Path, help="a data set in the real format (wiki.txt ...)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-out"), help="results (JSON)")
    parser.add_argument("--runs", type=Path, default=Path("runs/gpu"), help="the runs' own folders")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=len(variant_names()) * len(PRECISIONS), help="smoke runs at once")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run (the CPU rehearsal's small model)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="data.workers of each run (pinned copies on a GPU)")
    parser.add_argument("--precisions", nargs="+", choices=BENCH_ORDER, default=list(BENCH_ORDER),
                        help="bench: the precisions to measure, in this order (default: all, bf16 first; the CPU "
                             "rehearsal measures fewer, since its smoke already ran every one)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="the stage's deadline: no run starts that cannot finish before it; results so far are kept")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "machine":
        facts = machine()
        (args.out / "machine.json").write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
        print(facts["nvidia-smi"] if facts["nvidia-smi"] != "not found" else "", "\n".join(
            f"{k}: {v}" for k, v in facts.items() if k != "nvidia-smi"), sep="\n")
        return 0
    if args.data is None or not (args.data / "wiki.txt").is_file():
        parser.error(f"--data: no wiki.txt in {args.data}")
    data = DataSet(args.data, "given")
    deadline = Deadline(args.budget)
    if args.stage == "smoke":
        rows = smoke(data, args.out, args.runs, args.steps, args.parallel, args.workers, args.overrides, deadline)
        print("\n".join(table_lines(rows)))
        failed = [r for r in rows if not r["ok"]]
        for r in failed:
            print(f"error: smoke {r['variant']} {r['precision']}: {r.get('error', 'finished without resuming through the universal checkpoint')}",
                  file=sys.stderr)
        return 1 if failed else 0
    precisions = tuple(dict.fromkeys(args.precisions))  # in the order given, each once
    result = benchmark(data, args.out, args.runs, args.steps, args.workers, args.overrides, deadline, precisions)
    print("\n".join(table_lines(result["runs"])))
    print(f"matmul TFLOP/s: {result['matmul_tflops']}; loader: {result.get('loader', 'not measured: the --budget was spent')}")
    return 1 if any(not r["ok"] for r in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
