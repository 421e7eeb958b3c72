"""Accuracy against compute: each recipe as a curve over pretraining budgets, not a point.

A recipe that wins at 15 minutes may lose at 60, so candidates are compared at several budgets.
Sweeps whose configs differ only in the pretraining budget (`train.epochs`, `train.final_tokens`,
`train.max_steps` of the pretraining phase) and are scored on the same answers file are points of
one curve; every other key that differs between the sweeps names the curve, per variant. A point's cost is the CPU time of pretraining plus
finetuning (the job's own processes, all threads; run.json `cpu_seconds`): wall time would charge a
run for whatever else the machine ran, and two cores alone for an hour are at most 120 CPU-minutes.
Its accuracy is the mean over seeds with the standard error of experiments.decisions.
"""

from __future__ import annotations

import io
import statistics
import textwrap
from dataclasses import dataclass
from pathlib import Path

from experiments.decisions import standard_error
from experiments.figures import variant_colour
from experiments.formats import duration, plain
from experiments.runs import Sweep
from experiments.tables import SHARED, SHARED_NOTE, recipe, recipe_keys

BUDGET_KEYS = ("train.epochs", "train.final_tokens", "train.max_steps")


@dataclass(frozen=True)
class Point:
    sweep: Sweep
    variant: str
    budget: tuple  # the pretraining's values of BUDGET_KEYS: what tells the points of a curve apart
    steps: int  # the pretraining's last logged optimizer step
    epochs: float
    cpu_minutes: float | None  # mean over seeds of pretraining + finetuning CPU time
    wall_seconds: float  # mean over seeds of pretraining + finetuning wall time
    shared: bool
    accuracies: list[float]
    questions: int

    @property
    def accuracy(self) -> float:
        return statistics.mean(self.accuracies)

    @property
    def error(self) -> float:
        return standard_error(self.accuracies, self.questions)


def point(sweep: Sweep, variant: str) -> Point:
    pretrains = [sweep.runs[(variant, s, "pretrain")] for s in sweep.seeds]
    finetunes = [sweep.runs[(variant, s, "finetune")] for s in sweep.seeds]
    cpu = [p.cpu_seconds + f.cpu_seconds for p, f in zip(pretrains, finetunes)
           if p.cpu_seconds is not None and f.cpu_seconds is not None]
    budget = tuple(pretrains[0].setting(key) for key in BUDGET_KEYS)
    return Point(sweep, variant, budget, pretrains[0].loss[-1][0], pretrains[0].setting("train.epochs"),
                 statistics.mean(cpu) / 60 if len(cpu) == len(pretrains) else None,
                 statistics.mean(p.seconds + f.seconds for p, f in zip(pretrains, finetunes)),
                 any(r.shared for r in pretrains + finetunes), sweep.accuracies(variant, "pretrained"),
                 finetunes[0].accuracy["total"])


def curves(sweeps: list[Sweep]) -> dict[str, list[Point]]:
    """Curve name -> its points in order of pretraining steps; only curves of at least two budgets are curves."""
    pretrained = [s for s in sweeps if "pretrained" in s.settings]
    if len(pretrained) < 2:
        return {}
    keys = recipe_keys(pretrained, skip=BUDGET_KEYS)
    several_answers = len({s.answers_key for s in pretrained}) > 1
    grouped: dict[tuple[str, str], list[Point]] = {}  # (name, answers file): points on other questions are
    for sweep in pretrained:                          # another curve (the data paths are no recipe key)
        for variant in sweep.variants:
            name = f"{variant}: {recipe(sweep, keys)}" if keys else variant
            grouped.setdefault((name, sweep.answers_key), []).append(point(sweep, variant))
    found = {}
    for (name, _), points in grouped.items():
        if len({p.budget for p in points}) > 1:
            found[f"{name} on `{points[0].sweep.answers}`" if several_answers else name] = \
                sorted(points, key=lambda p: p.steps)
    return found


def legend_names(found: dict[str, list[Point]]) -> list[str]:
    """Each curve's legend entry: its variant and only the recipe keys in which the curves differ (the
    table beside the figure names the whole recipe), wrapped, so a long recipe cannot crowd out the plot."""
    first = [points[0] for points in found.values()]
    keys = recipe_keys([p.sweep for p in first], skip=BUDGET_KEYS) if len(first) > 1 else []
    names = [f"{p.variant}: {recipe(p.sweep, keys)}" if keys else p.variant for p in first]
    if len({p.sweep.answers_key for p in first}) > 1:  # the answers file's folder and name
        names = [f"{name} on {'/'.join(Path(p.sweep.answers).parts[-2:])}" for name, p in zip(names, first)]
    return [textwrap.fill(name, 48) for name in names]


def curve_figure(found: dict[str, list[Point]]) -> bytes:
    """Accuracy (mean ± SE) against CPU-minutes, one line per curve; hollow markers: a shared machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7.5, 4.8))
    markers = "osD^vP*X"
    for index, (name, points) in enumerate(zip(legend_names(found), found.values())):
        drawn = [p for p in points if p.cpu_minutes is not None]
        if not drawn:
            continue
        colour = variant_colour(drawn[0].variant)
        marker = markers[index % len(markers)]
        axis.errorbar([p.cpu_minutes for p in drawn], [p.accuracy for p in drawn], yerr=[p.error for p in drawn],
                      color=colour, marker=marker, linestyle="-", capsize=3, label=name, markerfacecolor=colour)
        for p in drawn:
            if p.shared:
                axis.plot([p.cpu_minutes], [p.accuracy], marker=marker, color="white", markersize=3.5, linestyle="", zorder=5)
    axis.set_xlabel("CPU-minutes, pretraining + finetuning (all threads; 2 cores for an hour = 120)")
    axis.set_ylabel("accuracy on the questions scored (%)")
    axis.grid(True, alpha=0.3)
    # beside the axes, not on them: a legend naming every differing setting of many curves is taller than the plot
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def curves_section(sweeps: list[Sweep], figures_link: str) -> tuple[list[str], dict[str, bytes]]:
    """The Curves section's Markdown (figure and table) and its PNG; nothing when no curve has two budgets."""
    found = curves(sweeps)
    if not found:
        return [], {}
    lines = ["## Curves", "",
             "Sweeps that differ only in the pretraining budget, joined into one curve per recipe and variant: "
             "accuracy (mean over seeds ± standard error, experiments.decisions) against the CPU time of "
             "pretraining + finetuning. A point with a white centre ran on a shared machine.", "",
             f"![accuracy against CPU-minutes]({figures_link}/curves.png)", "",
             "| curve | sweep | pretraining epochs | steps | seeds | accuracy ± SE | CPU time | wall time |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, points in found.items():
        for p in points:
            cpu = "—" if p.cpu_minutes is None else duration(60 * p.cpu_minutes)
            lines.append(f"| {name} | {p.sweep.slug} | {plain(p.epochs)} | {p.steps:,} | {len(p.accuracies)} | "
                         f"{p.accuracy:.1f} ± {p.error:.1f} | {cpu} | {duration(p.wall_seconds)}"
                         f"{SHARED if p.shared else ''} |")
    lines.append("")
    if any(p.shared for points in found.values() for p in points):
        lines += [SHARED_NOTE, ""]
    return lines, {"curves.png": curve_figure(found)}
