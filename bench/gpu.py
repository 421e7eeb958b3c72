"""The GPU runbook's measuring parts (bench/gpu.sh runs them): the machine, a smoke, a benchmark.

    python -m bench.gpu machine                          versions, GPU, nvidia-smi
    python -m bench.gpu smoke --data DIR --steps 100     each variant in each GPU precision, at once
    python -m bench.gpu bench --data DIR --steps 300     tokens/s, MFU, full-pretraining time, loader

Every run is the real launcher (launcher/train.py, world size 1: NCCL on a GPU, gloo on a CPU)
at SPEC's model size and batch (configs/pretrain.yaml). The smoke runs all twelve runs together, to
fail fast; the benchmark runs them one after another, so each has the device to itself. Tokens/s
is the steady rate after the first logging window (allocator, cuDNN/cuBLAS heuristics, worker
start-up). MFU counts 6 x parameters + 12 x layers x width x block FLOPs per token (the PaLM/nanoGPT
estimate, attention included) against the GPU's dense peak for the precision and against a matrix
product measured here, which is what this GPU actually sustains.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
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
# Dense peak TFLOP/s by precision, from the vendors' data sheets (SXM parts; no sparsity).
PEAKS = {"H100": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.4},
         "H200": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.4},
         "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}}


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
            workers: int, overrides: list[str]) -> dict:
    """One launcher run; its steady tokens/s and last loss from metrics.jsonl, or its last error line."""
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(train_command(data, run_dir, variant, precision, steps, log_every, workers, overrides),
                            cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    row = {"variant": variant, "precision": precision, "steps": steps, "seconds": round(seconds, 1), "ok": result.returncode == 0}
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        row["error"] = next((line for line in reversed(lines) if line.startswith("error:")),
                            f"exit {result.returncode}: {lines[-1] if lines else 'no output'}")
        return row
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    steady = [m["train/tokens_per_second"] for m in metrics[1:]] or [m["train/tokens_per_second"] for m in metrics]
    row["tokens_per_second"] = round(len(steady) / sum(1 / r for r in steady))  # tokens over time: harmonic mean
    row["final_loss"] = round(metrics[-1]["train/loss"], 4)
    return row


def smoke(data: DataSet, out: Path, steps: int, parallel: int, overrides: list[str]) -> list[dict]:
    jobs = [(v, p) for v in variant_names() for p in PRECISIONS]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda job: run_one(data, out / f"smoke-{job[0]}-{job[1]}", *job, steps,
                                                 max(1, steps // 4), 0, overrides), jobs))


def flops_per_token(variant: str, overrides: list[str]) -> float:
    """6 N + 12 L d T of the runs' model (the estimate of PaLM's appendix B and nanoGPT's estimate_mfu)."""
    from bench.common import spec_run_config
    from launcher.config import gpt_config
    from model import GPT

    run = spec_run_config(f"model.variant={variant}", *overrides)
    config = gpt_config(run, 256)
    parameters = sum(p.numel() for p in GPT(config).parameters())
    return 6 * parameters + 12 * run.model.n_layer * run.model.n_embd * run.data.block_size


def matmul_ceiling(precision: str, size: int = 8192, repeats: int = 10) -> float | None:
    """TFLOP/s of a size^3 matrix product in `precision`, the mean of `repeats` after warm-up (GPU only)."""
    if not torch.cuda.is_available():
        return None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
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


def peak(precision: str) -> float | None:
    name = device_name()
    return next((table[precision] for key, table in PEAKS.items() if key in name), None)


def benchmark(data: DataSet, out: Path, steps: int, workers: int, overrides: list[str]) -> dict:
    from bench import loader

    ceilings = {p: matmul_ceiling(p) for p in PRECISIONS}
    rows = []
    for variant in variant_names():
        flops = flops_per_token(variant, overrides)
        for precision in PRECISIONS:
            row = run_one(data, out / f"bench-{variant}-{precision}", variant, precision, steps, max(1, steps // 6),
                          workers, overrides)
            if row["ok"]:
                achieved = row["tokens_per_second"] * flops / 1e12
                row["model_tflops"] = round(achieved, 2)
                ceiling = peak(precision)
                row["mfu_peak"] = round(achieved / ceiling, 4) if ceiling else None
                row["mfu_measured_ceiling"] = round(achieved / ceilings[precision], 4) if ceilings[precision] else None
                row["full_pretraining_seconds"] = round(SPEC_TOKENS / row["tokens_per_second"], 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"machine": machine(), "matmul_tflops": ceilings, "runs": rows,
            "loader": loader.worker_path(data, max(1, workers))}


def table_lines(rows: list[dict]) -> list[str]:
    lines = ["| variant | precision | ok | tokens/s | MFU (peak) | MFU (measured matmul) | full pretraining (s) | final loss |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        mfu = lambda key: f"{100 * r[key]:.1f}%" if r.get(key) is not None else "-"  # noqa: E731
        lines.append(f"| {r['variant']} | {r['precision']} | {'yes' if r['ok'] else r.get('error', 'no')} | "
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
                        help="data.workers of each benchmark run")
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
    scratch = args.runs
    if args.stage == "smoke":
        rows = smoke(data, scratch, args.steps, args.parallel, args.overrides)
        (args.out / "smoke.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        print("\n".join(table_lines(rows)))
        failed = [r for r in rows if not r["ok"]]
        for r in failed:
            print(f"error: smoke {r['variant']} {r['precision']}: {r['error']}", file=sys.stderr)
        return 1 if failed else 0
    result = benchmark(data, scratch, args.steps, args.workers, args.overrides)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print("\n".join(table_lines(result["runs"])))
    print(f"matmul TFLOP/s: {result['matmul_tflops']}; loader: {result['loader']}")
    return 1 if any(not r["ok"] for r in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
