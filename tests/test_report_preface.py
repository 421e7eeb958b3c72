"""The report's pieces that need no training run: preface placeholders, the reference configs, the variant registry.

Sweeps are built in memory with the synthetic section's numbers of docs/results.md (vanilla and rope,
3 seeds), so each placeholder is checked against a value a person can find in that table.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from experiments import reference
from experiments.baselines import Baselines
from experiments.preface import check_preface, fill_preface
from experiments.reference import differences_from_spec
from experiments.runs import ReportError, RunResult, Sweep
from launcher.config import load_config, to_yaml
from launcher.evaluate import Score

ACCURACY = {  # (variant, phase) -> dev accuracy in percent per seed
    ("vanilla", "finetune_scratch"): [1.0, 1.0, 0.0], ("vanilla", "finetune"): [15.0, 9.0, 16.0],
    ("rope", "finetune_scratch"): [3.0, 3.0, 6.0], ("rope", "finetune"): [17.0, 7.0, 12.0],
}
LOSS = {"pretrain": [0.5203, 0.5523, 0.4921], "finetune": [0.0183, 0.0682, 0.0204], "finetune_scratch": [0.2553, 0.2643, 0.2344]}
RECALL = [70.0, 80.0, 75.0]  # what the synthetic sweep's pretraining stored, per seed (memorization.json)
SECONDS = {"pretrain": [221, 290, 212], "finetune": [3, 30, 5], "finetune_scratch": [8, 8, 10]}


def run(variant: str, seed: int, phase: str, scale: int) -> RunResult:
    config = {"model": {"variant": variant, "n_embd": 64}, "train": {"epochs": {"pretrain": 120.0}.get(phase, 10.0)}}
    accuracy = ACCURACY.get((variant, phase))
    result = RunResult(Path("runs") / variant / phase, phase, config,
                       [{"seconds": SECONDS[phase][seed] * scale, "device": "cpu", "started": "2026-11-24T06:00:00"}],
                       [(10, LOSS[phase][seed] * scale)],
                       accuracy=None if accuracy is None else {"accuracy": accuracy[seed] / 100, "correct": int(accuracy[seed]), "total": 100})
    if phase == "pretrain" and scale == 1:
        result.memorization = {"recall": {"continue": {"accuracy": RECALL[seed] / 100},
                                          "infill": {"accuracy": RECALL[seed] / 200}}}
    return result


def make_sweep(slug: str, variants: list[str], scale: int = 1) -> Sweep:
    runs = {(v, s, p): run(v, s, p, scale) for v in variants for s in (0, 1, 2)
            for p in ("pretrain", "finetune", "finetune_scratch")}
    return Sweep(Path("runs/sweep") / slug, {"variants": variants, "seeds": [0, 1, 2],
                                            "settings": ["scratch", "pretrained"], "command": "python -m experiments.sweep"}, runs)


SWEEPS = [make_sweep("synthetic", ["vanilla", "rope"]), make_sweep("slow", ["rope"], scale=2)]
BASELINES = {s.slug: Baselines(Score(25, 500), "London", Score(25, 500)) for s in SWEEPS}


def fill(text: str) -> str:
    return fill_preface(Path("docs/preface.md"), text, SWEEPS, BASELINES)


@pytest.mark.parametrize("placeholder, value", [
    ("{{gain sweep=synthetic variant=vanilla}}", "+12.7"),
    ("{{gain sweep=synthetic variant=rope}}", "+8.0"),
    ("{{gain_range sweep=synthetic variant=vanilla}}", "+8.0 to +16.0"),
    ("{{accuracy sweep=synthetic variant=vanilla setting=pretrained}}", "13.3 ± 3.8"),
    ("{{accuracy sweep=synthetic variant=rope setting=scratch}}", "4.0 ± 1.7"),
    ("{{accuracy_range sweep=synthetic variant=rope}}", "3.0–17.0"),
    ("{{accuracy_range sweep=synthetic setting=pretrained seed=1}}", "7.0–9.0"),
    ("{{accuracy_range sweep=synthetic variant=vanilla setting=scratch seed=0,1}}", "1.0"),
    ("{{final_loss_range sweep=synthetic phase=pretrain}}", "0.49–0.55"),
    ("{{final_loss_range sweep=synthetic,slow phase=pretrain variant=rope}}", "0.49–1.10"),
    ("{{final_loss_range sweep=synthetic phase=finetune_scratch seed=2}}", "0.23"),
    ("{{wall_time sweep=synthetic variant=vanilla}}", "13 min 07 s"),
    ("{{wall_time sweep=synthetic,slow phase=pretrain}}", "48 min 12 s"),
    ("{{wall_time_range sweep=synthetic variant=vanilla phase=pretrain seed=0,2}}", "3 min 32 s–3 min 41 s"),
    ("{{london sweep=slow}}", "5.0"),
    ("{{recall sweep=synthetic variant=vanilla}}", "75.0 ± 5.0"),
    ("{{recall sweep=synthetic variant=vanilla form=infill}}", "37.5 ± 2.5"),
    ("{{reference variant=perceiver setting=pretrained}}", "8.2"),
    ("{{reference variant=vanilla setting=scratch}}", "0.6–2.0"),
    ("{{config sweep=synthetic phase=pretrain key=train.epochs}}", "120"),
    ("{{config sweep=slow phase=finetune key=model.n_embd variant=rope}}", "64"),
])
def test_a_placeholder_prints_the_runs_number(placeholder, value):
    assert fill(f"- before {placeholder} after\n") == f"- before {value} after\n"


def test_compare_gives_any_two_sweeps_the_comparison_tables_verdict():
    """rope's [17, 7, 12] against itself is +0.0; against vanilla-like [15, 9, 16] of a sweep made 5 points
    better on every seed it is better beyond two standard errors, the other way worse."""
    better = make_sweep("better", ["rope"])
    for seed in (0, 1, 2):
        run = better.runs[("rope", seed, "finetune")]
        run.accuracy = {**run.accuracy, "accuracy": run.accuracy["accuracy"] + 0.3}
    sweeps = [*SWEEPS, better]
    def compare(names: str) -> str:
        return fill_preface(Path("p.md"), f"{{{{compare sweep={names} variant=rope}}}}", sweeps, BASELINES | {"better": BASELINES["slow"]})
    assert compare("synthetic,slow") == "+0.0 ± 4.1 (no decision)"
    assert compare("better,synthetic") == "+30.0 ± 4.1 (better)"
    assert compare("synthetic,better") == "-30.0 ± 4.1 (worse)"
    across = fill_preface(Path("p.md"), "{{compare sweep=synthetic,synthetic variant=rope,vanilla}}", sweeps, BASELINES)
    assert across == "-1.3 ± 3.6 (no decision)"  # rope's [17, 7, 12] against vanilla's [15, 9, 16]
    with pytest.raises(ReportError, match=r"p.md:1: \{\{compare sweep=synthetic variant=rope\}\}: compare takes two sweeps"):
        compare("synthetic")


def test_a_preface_keeps_its_prose_and_fills_several_placeholders_on_a_line():
    text = "# Notes\n\nvanilla {{gain sweep=synthetic variant=vanilla}}, rope {{gain sweep=synthetic variant=rope}}.\n"
    assert fill(text) == "# Notes\n\nvanilla +12.7, rope +8.0.\n"


@pytest.mark.parametrize("placeholder, problem", [
    ("{{gain sweep=synthetic variant=perceiver}}", "unknown variant 'perceiver' (sweep synthetic holds vanilla, rope)"),
    ("{{gain sweep=real variant=vanilla}}", "unknown sweep 'real' (this report's sweeps: synthetic, slow)"),
    ("{{accuracy sweep=synthetic variant=rope setting=both}}", "unknown setting 'both' (sweep synthetic holds scratch, pretrained)"),
    ("{{final_loss_range sweep=synthetic phase=evaluate}}",
     "unknown phase 'evaluate' (sweep synthetic holds pretrain, finetune, finetune_scratch)"),
    ("{{wall_time sweep=synthetic seed=7}}", "unknown seed '7' (sweep synthetic holds 0, 1, 2)"),
    ("{{final_loss_range sweep=slow variant=vanilla}}", "unknown variant 'vanilla' (sweep slow holds rope)"),
    ("{{accuracy_range sweep=synthetic,slow variant=perceiver}}",
     "unknown variant 'perceiver' (sweeps synthetic, slow hold vanilla, rope)"),
    ("{{gain sweep=synthetic,slow variant=rope}}", "gain takes one sweep, got 2"),
    ("{{gain sweep=synthetic}}", "gain needs variant="),
    ("{{gain sweep=synthetic variant=rope setting=scratch}}", "gain takes no key 'setting' (it takes sweep, variant)"),
    ("{{gain sweep=synthetic variant}}", "expected key=value[,value...], got 'variant'"),
    ("{{gain sweep=synthetic variant=rope,}}", "expected key=value[,value...], got 'variant=rope,'"),
    ("{{gain sweep=synthetic sweep=slow variant=rope}}", "sweep given twice"),
    ("{{reference variant=rope setting=pretrained}}", "the reports give no reference result for rope, pretrained"),
    ("{{recall sweep=slow variant=rope}}", "sweep slow has a pretraining run not measured on its questions (memorization.json)"),
    ("{{recall sweep=synthetic variant=rope form=prefix}}", "unknown recall form 'prefix' (sweep synthetic measured continue, infill)"),
    ("{{config sweep=synthetic phase=pretrain key=model.variant}}", "model.variant differs between the selected runs (rope, vanilla)"),
    ("{{config sweep=synthetic phase=pretrain key=model.depth}}", "no config key 'model.depth' in those runs' config.yaml"),
])
def test_a_bad_placeholder_is_one_error_naming_file_line_and_placeholder(placeholder, problem):
    with pytest.raises(ReportError) as error:
        fill(f"first line\n\nthird {{{{london sweep=slow}}}} then {placeholder}.\n")
    assert str(error.value) == f"docs/preface.md:3: {placeholder}: {problem}"


@pytest.mark.parametrize("line, problem", [
    ("{{gians sweep=synthetic}}", "{{gians sweep=synthetic}}: unknown placeholder 'gians' (known: gain, gain_range, "
                                   "accuracy, accuracy_range, final_loss_range, wall_time, wall_time_range, london, recall, "
                                   "compare, compare_paired, reference, config)"),
    ("text {{london sweep=slow", "unclosed placeholder (a {{...}} opens and closes on one line)"),
    ("text }} and", "unclosed placeholder (a {{...}} opens and closes on one line)"),
    ("{{ }}", "{{ }}: empty placeholder"),
])
def test_a_malformed_placeholder_fails_before_any_sweep_is_read(line, problem):
    with pytest.raises(ReportError) as error:
        check_preface(Path("notes.md"), f"ok {{{{london sweep=x}}}}\n{line}\n")
    assert str(error.value) == f"notes.md:2: {problem}"


@pytest.mark.parametrize("preface_name, results_name", [("results-preface.md", "results.md"),
                                                       ("results-cpu-storage-preface.md", "results-cpu-storage.md"),
                                                       ("results-worlds-preface.md", "results-worlds.md"),
                                                       ("results-cpu-curves-preface.md", "results-cpu-curves.md"),
                                                       ("results-cpu-round1-preface.md", "results-cpu-round1.md"),
                                                       ("results-cpu-preface.md", "results-cpu.md"),
                                                       ("results-cpu-finetune-preface.md", "results-cpu-finetune.md")])
def test_the_committed_preface_parses_and_names_only_the_reports_sweeps(preface_name, results_name):
    preface = (ROOT / "docs" / preface_name).read_text(encoding="utf-8")
    check_preface(Path("docs") / preface_name, preface)
    results = (ROOT / "docs" / results_name).read_text(encoding="utf-8")
    sections = set(re.findall(r"\(sweep directory `[^`]*?([^/`]+)`", results))
    named = {name for names in re.findall(r"sweep=([\w,.-]+)", preface) for name in names.split(",")}
    assert named and named <= sections, named - sections
    assert not re.search(r"\d+\.\d+ ?%", re.sub(r"\{\{.*?\}\}", "", preface)), "a percentage copied by hand"


def config_tree(path: Path, *overrides: str) -> dict:
    return yaml.safe_load(to_yaml(load_config([path], list(overrides))))


def sweep_of_configs(scale: Path) -> Sweep:
    runs = {("vanilla", 0, p): RunResult(Path(p), p, config_tree(scale / f"{p}.yaml"), [], [])
            for p in ("pretrain", "finetune", "finetune_scratch")}
    return Sweep(Path("runs/sweep/x"), {"variants": ["vanilla"], "seeds": [0], "settings": ["scratch", "pretrained"],
                                        "command": "c"}, runs)


def test_the_reference_configs_are_the_full_scale_and_a_reduced_scale_is_listed():
    assert differences_from_spec(sweep_of_configs(ROOT / "configs"), 500) == []
    assert differences_from_spec(sweep_of_configs(ROOT / "configs" / "reduced"), 500) == [
        "`model.n_head` 4 (SPEC: 8)", "`model.n_embd` 128 (SPEC: 256)", "pretrain `train.epochs` 120.0 (SPEC: 650)",
        "pretrain `train.final_tokens` 13881945 (SPEC: 200 x pretraining documents x block_size)"]
    assert differences_from_spec(sweep_of_configs(ROOT / "configs"), 100) == ["dev set of 100 questions (SPEC's real dev set: 500)"]


def test_the_reference_shape_is_read_from_the_reference_configs(tmp_path, monkeypatch):
    for name in ("pretrain", "finetune", "finetune_scratch"):
        shutil.copy(ROOT / "configs" / f"{name}.yaml", tmp_path)
    pretrain = tmp_path / "pretrain.yaml"
    pretrain.write_text(pretrain.read_text().replace("n_embd: 256", "n_embd: 512"))
    monkeypatch.setattr(reference, "REFERENCE_CONFIGS", tmp_path)
    assert differences_from_spec(sweep_of_configs(ROOT / "configs"), 500) == ["`model.n_embd` 256 (SPEC: 512)"]


def test_variants_are_read_from_the_registry_when_used(monkeypatch):
    import model
    from experiments.figures import variant_colour
    from experiments.sweep import parse_args

    with pytest.raises(SystemExit):
        parse_args(["configs/demo", "--out", "x", "--variants", "fifth"])
    monkeypatch.setattr(model, "VARIANTS", {**model.VARIANTS, "fifth": None})
    assert parse_args(["configs/demo", "--out", "x", "--variants", "fifth"]).variants == ["fifth"]
    assert parse_args(["configs/demo", "--out", "x"]).variants == [*model.VARIANTS]
    sweep = Sweep(Path("s"), {"variants": ["fifth", "rope", "vanilla"], "seeds": [0], "settings": ["scratch"], "command": "c"})
    assert sweep.variants == ["vanilla", "rope", "fifth"]
    from matplotlib import colormaps

    assert variant_colour("fifth") == colormaps["tab10"](len(model.VARIANTS) - 1)
    assert variant_colour("vanilla") == colormaps["tab10"](0)


@pytest.mark.parametrize("manifest, problem", [
    ({"variants": ["vanilla"], "seeds": ["0"], "settings": ["scratch"], "command": "c"},
     "seeds: expected a non-empty list of int values, got ['0']"),
    ({"variants": [], "seeds": [0], "settings": ["scratch"], "command": "c"},
     "variants: expected a non-empty list of str values, got []"),
    ({"variants": ["vanilla"], "seeds": [0], "settings": ["finetuned"], "command": "c"},
     "settings: unknown finetuned (known: scratch, pretrained)"),
])
def test_a_bad_sweep_manifest_is_one_error_naming_it(tmp_path, manifest, problem):
    from experiments.runs import read_sweep

    (tmp_path / "sweep.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ReportError) as error:
        read_sweep(tmp_path)
    assert str(error.value) == f"{tmp_path / 'sweep.json'}: {problem}"
