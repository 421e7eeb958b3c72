"""The reference a sweep is read against: the published results, and the reference configs.

The published dev accuracies below are data from the paper's independent reports (listed in
docs/experiment.md, "Reference results"); nothing in this project can recompute them. The
reference model shape and schedule are not repeated here: they are read from the reference configs
(configs/pretrain.yaml, finetune.yaml, finetune_scratch.yaml), the same files a full-scale sweep
runs, so changing the reference is one edit there.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import yaml

from experiments.formats import plain, span
from experiments.runs import ReportError, Sweep, lookup
from launcher.config import ConfigError, load_config, to_yaml

# Dev accuracy (500 questions, full schedule) of each independent report, in percent.
SPEC_REFERENCE = {
    ("vanilla", "scratch"): [0.6, 1.0, 1.8, 1.8, 2.0],
    ("vanilla", "pretrained"): [21.6, 23.8, 26.6, 30.6],
    ("synthesizer", "pretrained"): [6.8, 7.0, 8.0],
    ("perceiver", "pretrained"): [8.2],
}
# The reports give a no-pretraining result for this one setting only; every reference gain is against it.
SPEC_SCRATCH = ("vanilla", "scratch")
SPEC_LONDON = 5.0  # answering "London" to every dev question
SPEC_DEV_LINES = 500
REFERENCE_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# What makes a run full scale besides the model shape (data.block_size and every model.* key but the variant).
SCHEDULE_KEYS = ("train.epochs", "train.global_batch_size", "train.learning_rate", "train.final_tokens",
                 "train.max_steps")
UNSET_MEANS = {"train.final_tokens": "200 x pretraining documents x block_size", "train.max_steps": "none"}


def reference_values(variant: str, setting: str) -> list[float]:
    return SPEC_REFERENCE.get((variant, setting), [])


def reference_gain(variant: str) -> float | None:
    """The mean of the variant's pretrained reports minus the mean no-pretraining report (None without reports)."""
    pretrained = reference_values(variant, "pretrained")
    if not pretrained:
        return None
    return statistics.mean(pretrained) - statistics.mean(SPEC_REFERENCE[SPEC_SCRATCH])


def spec_reference(variant: str, setting: str) -> str:
    """The table's reference cell: one value, or the range and how many reports span it."""
    values = reference_values(variant, setting)
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{span(f'{min(values):.1f}', f'{max(values):.1f}')} ({len(values)} reports)"


def reference_config(phase_config: str) -> dict:
    """The reference config of a phase, resolved and as a run directory's config.yaml holds it."""
    path = REFERENCE_CONFIGS / f"{phase_config}.yaml"
    try:
        return yaml.safe_load(to_yaml(load_config([path])))
    except ConfigError as exc:
        raise ReportError(f"reference config {exc}") from None


def same(value, reference) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, reference))
    return math.isclose(float(value), float(reference)) if numbers else value == reference


def model_keys(reference: dict) -> list[str]:
    return ["data.block_size", *(f"model.{key}" for key in reference["model"] if key != "variant")]


def differences_from_spec(sweep: Sweep, dev_lines: int) -> list[str]:
    """Each setting of this sweep that is not the reference's, as "key value (SPEC: value)"."""
    found = []
    any_run = next(iter(sweep.runs.values()))
    reference = reference_config(any_run.phase_config)
    for key in model_keys(reference):
        if not same(any_run.setting(key), lookup(reference, key)):
            found.append(f"`{key}` {any_run.setting(key)} (SPEC: {plain(lookup(reference, key))})")
    for phase_config in dict.fromkeys(p for _, _, p in sweep.runs):
        run = next(r for (_, _, p), r in sweep.runs.items() if p == phase_config)
        reference = reference_config(phase_config)
        for key in SCHEDULE_KEYS:
            value, spec = run.setting(key), lookup(reference, key)
            if not same(value, spec):
                shown = UNSET_MEANS.get(key, "none") if spec is None else plain(spec)
                found.append(f"{phase_config} `{key}` {value} (SPEC: {shown})")
    if dev_lines != SPEC_DEV_LINES:
        found.append(f"dev set of {dev_lines} questions (SPEC's real dev set: {SPEC_DEV_LINES})")
    return found
