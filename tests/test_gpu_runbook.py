"""The GPU runbook (bench/gpu.sh), rehearsed on CPU as a GPU machine would run it.

A GPU machine has its own torch and no network and no make, and is lent for minutes: a missing
wheel, a wrong path or a stage that fails must show up here. So: a stand-in for the GPU image
(tests/gpu_image.py: torch and everything else but docs/gpu.md's WHEEL_ONLY list); docs/gpu.md's
`make wheels ... WHEEL_ONLY=...` line collects the rest; the runbook installs spangpt beside the
image's torch with `python -m install.offline` only, and runs both calls' stages at SCALE=tiny with
no GPU visible. Its results are read back as the next session would: the run folders' archive,
extracted, makes the report. A stage's time box keeps what the stage finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from importlib.metadata import version

from gpu_image import documented_wheel_line, image_environment
from launch import ROOT, check

VARIANTS = ("vanilla", "synthesizer", "perceiver", "rope")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return check(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, **kwargs))


def stages(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split(" (")[0] for line in result.stdout.splitlines() if line.startswith("== ") and "took" not in line]


def test_the_runbook_runs_both_calls_from_the_documented_offline_install(tmp_path):
    from data.synthetic import write_world

    pythons, only = documented_wheel_line()
    image = image_environment(tmp_path / "image", set(only))
    wheels = tmp_path / "wheels"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "PYTHONPATH")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    # what `make wheels WHEELS=... WHEEL_PYTHONS=... WHEEL_ONLY="..."` runs (make wheels, without its make setup)
    run([sys.executable, "-m", "install.wheels", str(wheels), *[a for p in pythons for a in ("--python", p)], "--only", *only],
        env=env)
    assert any(wheels.glob(f"setuptools-{version('setuptools')}-*.whl"))  # the build requirement comes with --only
    write_world(tmp_path / "world", seed=0, train=100, dev=100, test=50, places=20, overwrite=False)

    environment = tmp_path / "gpu-venv"
    out, runs = tmp_path / "out", tmp_path / "runs"
    env.update(OUT=str(out), WHEELS=str(wheels), VENV=str(environment), TORCH_PYTHON=str(image), DATA=str(tmp_path / "world"),
               RUNS=str(runs), SCALE="tiny", SPANGPT_COMMIT="rehearsal")
    first = run(["bash", "bench/gpu.sh"], env=env)
    assert stages(first) == ["== setup", "== smoke", "== spec", "== bench"]
    assert "built without isolation, with setuptools" in first.stdout  # the image's own setuptools

    # spangpt's environment installed from the wheels, torch used where it was, not copied
    python = environment / "bin" / "python"
    where = run([str(python), "-c", "import torch, deepspeed; print('torch', torch.__file__); print('deepspeed', deepspeed.__file__)"],
                env={**env, "DS_ACCELERATOR": "cpu"}).stdout
    found = dict(line.split(" ", 1) for line in where.splitlines() if line.startswith(("torch /", "deepspeed /")))
    assert found["torch"].startswith(str(image.parents[1])) and found["deepspeed"].startswith(str(environment))
    assert json.loads((out / "machine.json").read_text())["commit"] == "rehearsal"

    smoke = json.loads((out / "smoke.json").read_text())
    assert {(r["variant"], r["precision"]) for r in smoke if r["ok"]} == \
        {(v, p) for v in VARIANTS for p in PRECISIONS} | {("vanilla ZeRO-1 universal resume", "fp16")}
    [universal] = [r for r in smoke if r["variant"] == "vanilla ZeRO-1 universal resume"]
    assert universal["resumed"] and universal["universal"]
    bench = json.loads((out / "bench.json").read_text())
    # bf16 first; the rehearsal measures bf16 and fp32 only (BENCH_PRECISIONS), its smoke having run all four
    assert [(r["variant"], r["precision"]) for r in bench["runs"]] == [(v, p) for p in ("bf16", "fp32") for v in VARIANTS]
    assert all(r["ok"] and r["tokens_per_second"] > 0 for r in bench["runs"])
    assert all(0 < bench["model_flops_per_token"][v] for v in VARIANTS)
    assert bench["model_flops_per_token"]["perceiver"] < bench["model_flops_per_token"]["vanilla"]
    assert bench["loader"]["identical_micro_batches"] == bench["loader"]["compared_micro_batches"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "machine.json", "runs.tar.gz", "smoke.json"]
    with tarfile.open(out / "runs.tar.gz") as archive:  # call 1: vanilla and rope, pretrained and finetuned
        assert sorted(n for n in archive.getnames() if n.endswith("accuracy.json")) == \
            [f"spec/{v}/seed0/finetune/accuracy.json" for v in ("rope", "vanilla")]

    # call 2: the rest of the table (here on the same machine, beside what call 1 finished)
    second = run(["bash", "bench/gpu.sh", "setup", "rest"], env=env)
    assert stages(second) == ["== setup", "== rest"]
    with tarfile.open(out / "runs.tar.gz") as archive:  # the table comes back without checkpoints or weights
        names = archive.getnames()
        assert not any("/checkpoints" in n or "/export" in n or n.endswith(".safetensors") for n in names)
        archive.extractall(tmp_path / "back", filter="data")
    assert len([n for n in names if n.endswith("accuracy.json")]) == 8  # 4 variants x {pretrained, no pretraining}
    report = tmp_path / "report.md"
    run([sys.executable, "-m", "experiments.report", str(tmp_path / "back" / "spec"), "--out", str(report)])
    text = report.read_text(encoding="utf-8")
    assert all(variant in text for variant in VARIANTS)


def test_a_stage_cut_at_its_time_box_keeps_what_it_finished(tmp_path):
    """bench with a box too short for all its rows: the rows that fit are in bench.json, the rest say why."""
    from data.synthetic import write_world

    write_world(tmp_path / "world", seed=0, train=40, dev=20, test=10, places=10, overwrite=False)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "PYTHONPATH")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run([sys.executable, "-m", "bench.gpu", "bench", "--data", str(tmp_path / "world"), "--steps", "3",
                             "--out", str(out), "--runs", str(tmp_path / "runs"), "--workers", "1", "--budget", "25",
                             "--set", "model.n_embd=32", "model.n_head=2"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1  # not every row ran
    rows = json.loads((out / "bench.json").read_text())["runs"]
    ran = [r for r in rows if r["ok"]]
    assert ran and ran[0]["precision"] == "bf16" and len(ran) < 16
    assert all(r.get("error") in ("not run: the --budget was spent", "stopped at the stage's --budget")
               for r in rows if not r["ok"])
    assert len(rows) == 16  # every row is accounted for
