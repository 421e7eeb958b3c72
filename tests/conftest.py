"""Shared test fixtures: where the real data lives, and small corpora written to tmp_path."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from launch import check, launch, worker_env

ROOT = Path(__file__).resolve().parents[1]
def _real_data() -> Path:
    """$SPANGPT_REAL_DATA, else the README's datasets/birthplaces when it holds the corpus, else ../shared's copy."""
    if "SPANGPT_REAL_DATA" in os.environ:
        return Path(os.environ["SPANGPT_REAL_DATA"])
    readme_place = ROOT / "datasets" / "birthplaces"
    return readme_place if (readme_place / "wiki.txt").is_file() else ROOT.parent / "shared" / "data" / "birthplaces"


REAL_DATA = _real_data()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/birthplaces, or a skip that says where the files were looked for."""
    if not (REAL_DATA / "wiki.txt").is_file():
        pytest.skip(f"real data absent: no wiki.txt under datasets/birthplaces or {REAL_DATA} (set SPANGPT_REAL_DATA)")
    return REAL_DATA


def random_documents(count: int, seed: int = 0, min_len: int = 5, max_len: int = 150) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ.,"
    return [
        f"doc{i} " + "".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len))).strip()
        for i in range(count)
    ]


@pytest.fixture
def small_corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    """A 103-document corpus file with empty lines sprinkled in (which are not documents)."""
    documents = random_documents(103)
    lines = []
    for i, doc in enumerate(documents):
        lines.append(doc)
        if i % 17 == 0:
            lines.append("")
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, documents


def run_module(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python -m module args` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


# --- real training runs shared by the launcher tests (each is run once per session) ---------------

CONFIGS = ROOT / "configs"
TINY = ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "data.block_size=64", "model.dropout=0.1",
        "train.log_every=1", "train.learning_rate=3e-3"]
STEPS = 8


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    from data.synthetic import write_world

    out = tmp_path_factory.mktemp("world") / "w"
    write_world(out, seed=3, train=60, dev=16, test=8, places=10, overwrite=False)
    return out


def pretrain_overrides(world: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"run_dir={run_dir}", f"data.corpus={world / 'wiki.txt'}", "train.global_batch_size=8",
            "train.micro_batch_size=4", f"train.max_steps={STEPS}", *TINY, *extra]


@pytest.fixture(scope="session")
def pretrain_runs(world, tmp_path_factory) -> dict[str, Path]:
    """One rank at ZeRO-0 (2 accumulation steps), and 2 ranks (1 step) at each ZeRO stage."""
    runs = tmp_path_factory.mktemp("pretrain")
    out = {"1rank": runs / "1rank"}
    check(launch([str(CONFIGS / "pretrain.yaml")], pretrain_overrides(world, out["1rank"]), launcher="python"))
    for stage in range(4):
        out[f"zero{stage}"] = runs / f"zero{stage}"
        launcher = "deepspeed" if stage == 0 else "torchrun"  # the README's command, and torchrun
        extra = ["train.checkpoint_every=3"] if stage == 1 else []
        result = check(launch([str(CONFIGS / "pretrain.yaml")],
                              pretrain_overrides(world, out[f"zero{stage}"], f"train.zero_stage={stage}", *extra),
                              nproc=2, launcher=launcher))
        assert "world size 2" in result.stdout and f"ZeRO {stage}" in result.stdout
    return out


@pytest.fixture(scope="session")
def finetuned(world, pretrain_runs, tmp_path_factory) -> Path:
    """ZeRO-3 on 2 ranks pretrained; finetune at ZeRO-0 on 1 rank from its export, with dev predictions."""
    run = tmp_path_factory.mktemp("finetune") / "run"
    overrides = [f"run_dir={run}", f"init_from={pretrain_runs['zero3'] / 'export'}",
                 f"data.finetune={world / 'birth_places_train.tsv'}", f"eval.questions={world / 'birth_dev.tsv'}",
                 "train.global_batch_size=16", "train.epochs=2", "train.zero_stage=0", *TINY]
    result = check(launch([str(CONFIGS / "finetune.yaml")], overrides, launcher="python"))
    assert result.stdout.count("Correct: ") == 1
    return run




# --- a real sweep grid shared by the sweep, report and variant-registry tests (run once per session) ---

GRID = ["--variants", "vanilla", "rope", "--seeds", "0", "1", "--procs", "2", "--label", "tiny grid"]
TINY_SWEEP = ["--set", "train.max_steps=3", "model.n_embd=32", "model.n_head=2", "train.log_every=1",
              "finetune_scratch:eval.samples=3"]  # one phase only: the per-phase form of --set


def run_experiment(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m experiments.<module> args` as a user runs it."""
    return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=cwd, env=worker_env(),
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def grid(world, tmp_path_factory) -> Path:
    """vanilla and rope x seeds 0 and 1 x {pretrain -> finetune, finetune_scratch}: 12 tiny runs on 2 processes."""
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    result = run_experiment("sweep", "configs/demo", "--data", str(world), "--out", str(out), *GRID, *TINY_SWEEP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\n[") + result.stdout.startswith("[") == 12
    assert result.stdout.endswith(f"sweep complete: 12 runs under {out}; report: python -m experiments.report {out}\n")
    return out
