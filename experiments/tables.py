"""The Markdown tables of one sweep's section: dev accuracy, pretraining gain, and the runs."""

from __future__ import annotations

from experiments.baselines import Baselines
from experiments.formats import duration, loss, mean_std, percent, rate, signed, signed_span
from experiments.grid import SETTING_TITLES
from experiments.reference import SPEC_LONDON, SPEC_SCRATCH, reference_gain, spec_reference
from experiments.runs import Sweep


def accuracy_table(sweep: Sweep, baselines: Baselines) -> list[str]:
    """Dev accuracy per variant, setting and seed, mean ± std, and the reference beside each row."""
    seed_columns = " | ".join(f"seed {s}" for s in sweep.seeds)
    lines = [f"| variant | setting | {seed_columns} | mean ± std | SPEC (real data, full schedule) |",
             "|---|---|" + "---:|" * len(sweep.seeds) + "---:|---:|"]
    for variant in sweep.variants:
        for setting in sweep.settings:
            values = sweep.accuracies(variant, setting)
            cells = " | ".join(percent(v) for v in values)
            lines.append(f"| {variant} | {SETTING_TITLES[setting]} | {cells} | {mean_std(values)} | "
                         f"{spec_reference(variant, setting)} |")
    blank = " | ".join("" for _ in sweep.seeds)
    london, common = 100 * baselines.london.accuracy, 100 * baselines.most_common.accuracy
    lines.append(f"| constant \"London\" | baseline | {blank} | {percent(london)} | {percent(SPEC_LONDON)} |")
    lines.append(f"| most common dev answer ({baselines.most_common_answer}) | baseline | {blank} | "
                 f"{percent(common)} | {percent(SPEC_LONDON)} (London) |")
    return lines + [""]


def gain_table(sweep: Sweep) -> list[str]:
    """Pretrained minus no-pretraining accuracy per variant, beside the reports' gain."""
    lines = ["Pretraining gain: mean accuracy after pretraining minus mean accuracy without it, in points "
             "(seeds paired by index; the range is the smallest and largest per-seed gain).", "",
             "| variant | gain | per-seed range | SPEC (means of its reports) |", "|---|---:|---:|---:|"]
    for variant in sweep.variants:
        gains = sweep.gains(variant)
        spec = reference_gain(variant)
        spec_gain = "—" if spec is None else f"{signed(spec)} (against {SPEC_SCRATCH[0]}'s no-pretraining)"
        per_seed = signed_span(min(gains), max(gains))
        lines.append(f"| {variant} | {signed(sweep.gain(variant))} | {per_seed} | {spec_gain} |")
    return lines + [""]


def runs_table(sweep: Sweep) -> list[str]:
    """Device, wall time, steps, final loss, commit and date of every run."""
    lines = ["Runs:", "", "| run | device | wall time | steps | tokens/s | final loss | commit | date |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for (variant, seed, phase_config), run in sweep.runs.items():
        restarts = f" ({len(run.attempts)} attempts)" if len(run.attempts) > 1 else ""
        lines.append(f"| {variant} seed {seed} {phase_config} | {run.device} | {duration(run.seconds)}{restarts} | "
                     f"{run.loss[-1][0]} | {rate(run.tokens_per_second)} | {loss(run.final_loss)} | {run.commit} | {run.date} |")
    return lines + [""]
