"""The GPU runbook (bench/gpu.sh), rehearsed on CPU as a GPU machine would run it.

A GPU machine has its own torch and no network, and is lent for minutes: a missing wheel, a wrong
path or a stage that fails must show up here. So: an environment holding torch alone stands for the
GPU image; `make wheels` collects the rest; the runbook installs spangpt beside that torch with
`make setup-offline` only, and runs every stage at SCALE=tiny with no GPU visible. Its results are
read back as the next session would: the run folders' archive, extracted, makes the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from importlib.metadata import version

from launch import ROOT, check


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return check(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, **kwargs))


def test_the_runbook_runs_every_stage_from_an_offline_install(tmp_path):
    from data.synthetic import write_world

    torch_only = tmp_path / "torch-env"
    run([sys.executable, "-m", "venv", str(torch_only)])
    run([str(torch_only / "bin" / "python"), "-m", "pip", "install", "--quiet", f"torch=={version('torch')}"])
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "install.wheels", str(wheels)])  # make wheels, without its make setup
    write_world(tmp_path / "world", seed=0, train=100, dev=100, test=50, places=20, overwrite=False)

    environment = tmp_path / "gpu-venv"
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "PYTHONPATH")}
    env.update(CUDA_VISIBLE_DEVICES="", OUT=str(out), WHEELS=str(wheels), VENV=str(environment),
               TORCH_PYTHON=str(torch_only / "bin" / "python"), DATA=str(tmp_path / "world"), RUNS=str(runs),
               SCALE="tiny", SPANGPT_COMMIT="rehearsal")
    result = run(["bash", "bench/gpu.sh"], env=env)
    assert [line for line in result.stdout.splitlines() if line.startswith("== ")] == \
        ["== setup", "== smoke", "== table", "== bench"]

    # spangpt's environment installed from the wheels, torch used where it was, not copied
    python = environment / "bin" / "python"
    where = run([str(python), "-c", "import torch, deepspeed; print('torch', torch.__file__); print('deepspeed', deepspeed.__file__)"],
                env={**env, "DS_ACCELERATOR": "cpu"}).stdout
    found = dict(line.split(" ", 1) for line in where.splitlines() if line.startswith(("torch /", "deepspeed /")))
    assert found["torch"].startswith(str(torch_only)) and found["deepspeed"].startswith(str(environment))
    assert json.loads((out / "machine.json").read_text())["commit"] == "rehearsal"

    smoke = json.loads((out / "smoke.json").read_text())
    assert {(r["variant"], r["precision"]) for r in smoke if r["ok"]} == \
        {(v, p) for v in ("vanilla", "synthesizer", "perceiver", "rope") for p in ("fp32", "tf32", "bf16")}
    bench = json.loads((out / "bench.json").read_text())
    assert len(bench["runs"]) == 12 and all(r["ok"] and r["tokens_per_second"] > 0 for r in bench["runs"])
    assert bench["loader"]["identical_micro_batches"] == bench["loader"]["compared_micro_batches"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "machine.json", "runs.tar.gz", "smoke.json"]

    # the table comes back without checkpoints or weights, and the report is built from it elsewhere
    with tarfile.open(out / "runs.tar.gz") as archive:
        names = archive.getnames()
        assert not any("/checkpoints" in n or "/export" in n or n.endswith(".safetensors") for n in names)
        archive.extractall(tmp_path / "back", filter="data")
    finetuned = [n for n in names if n.endswith("accuracy.json")]
    assert len(finetuned) == 8  # 4 variants x {pretrained, no pretraining}
    report = tmp_path / "report.md"
    run([sys.executable, "-m", "experiments.report", str(tmp_path / "back" / "spec"), "--out", str(report)])
    text = report.read_text(encoding="utf-8")
    assert all(variant in text for variant in ("vanilla", "synthesizer", "perceiver", "rope"))
