"""The variant registry (model/variants.py) is the one place a variant is named.

A throwaway fifth variant, registered here and nowhere else (causal self-attention without any
position embedding, "NoPE"), is built by the model, accepted by config validation, planned by the
sweep's dry run and reported by the report, with no other file touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT
from experiments import report, sweep
from launcher.config import gpt_config, load_config
from model import GPT, VARIANTS
from model.generate import generate, generate_plain
from model.variants import SelfAttentionVariant
from models import small_config

CONFIGS = ROOT / "configs"


class NoPositions(SelfAttentionVariant):
    name = "nope"
    description = "causal self-attention with no position embedding at all"
    learned_positions = False


@pytest.fixture
def fifth(monkeypatch):
    monkeypatch.setitem(VARIANTS, "nope", NoPositions())
    return "nope"


def test_the_model_builds_and_decodes_a_registered_variant(fifth):
    torch.manual_seed(0)
    model = GPT(small_config(fifth, vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    assert not hasattr(model, "pos_emb") and model.supports_kv_cache
    assert model.num_parameters() == GPT(small_config("vanilla", vocab_size=30, block_size=16, n_layer=2, n_head=2,
                                                      n_embd=16)).num_parameters() - 16 * 16
    prompts = [[3, 4, 5], [7, 8]]
    assert generate(model, prompts, 20) == [generate_plain(model, p, 20) for p in prompts]


def test_config_validation_accepts_it(fifth):
    config = load_config(CONFIGS / "pretrain.yaml", [f"model.variant={fifth}"])
    assert gpt_config(config, 256).variant == fifth and config.run_dir == Path(f"runs/{fifth}/pretrain")


def test_the_sweeps_dry_run_grid_plans_it(fifth, world, tmp_path, capsys):
    status = sweep.main(["configs/demo", "--data", str(world), "--out", str(tmp_path / "out"), "--variants", "vanilla",
                         fifth, "--seeds", "0", "--procs", "1", "--dry-run"])
    assert status == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    assert sum(f"model.variant={fifth}" in line for line in lines) == 3
    assert not (tmp_path / "out").exists()


def test_the_report_orders_and_draws_it(fifth, grid, tmp_path):
    """The tiny grid's rope runs relabelled as the fifth variant: the report takes it in registry order."""
    relabelled = tmp_path / "tiny"
    shutil.copytree(grid, relabelled)
    shutil.move(relabelled / "rope", relabelled / fifth)
    for path in (relabelled / fifth).rglob("config.yaml"):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        config["model"]["variant"] = fifth
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    manifest = json.loads((relabelled / "sweep.json").read_text(encoding="utf-8"))
    manifest["variants"] = [fifth, "vanilla"]
    (relabelled / "sweep.json").write_text(json.dumps(manifest), encoding="utf-8")
    out = tmp_path / "docs" / "results.md"
    assert report.main([str(relabelled), "--out", str(out)]) == 0
    markdown = out.read_text(encoding="utf-8")
    rows = [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("| ") and "| pretrain, then" in line]
    assert rows == ["vanilla", fifth]  # registry order, not the manifest's
    assert (tmp_path / "docs" / "figures" / "tiny-pretrain.png").stat().st_size > 10_000
