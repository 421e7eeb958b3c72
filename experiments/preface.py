"""The preface's placeholders: numbers in the report's prose, filled from the sweeps it reads.

A preface (`python -m experiments.report ... --preface FILE`) is Markdown written by a person;
every number in it that comes from a run is a placeholder, so regenerating the report regenerates
the prose with the tables and the two cannot drift apart. A placeholder is one line's

    {{NAME key=value key=value ...}}

where a value is a name or a comma-separated list of names (no spaces). Sweeps are named by their
directory name (the report's section slug). Selections:

    sweep=S[,S...]    sweeps given to the report          variant=V[,V...]  variants of those sweeps
    setting=T[,T...]  scratch or pretrained               phase=P[,P...]    pretrain, finetune, finetune_scratch
    seed=N[,N...]     seeds of those sweeps

NAME is one of (keys in [] are optional; without them every variant, setting, phase or seed counts):

    gain sweep=S variant=V                      pretrained minus no-pretraining mean accuracy: +12.7
    gain_range sweep=S variant=V                smallest to largest per-seed gain: -1.0 to +3.0
    accuracy sweep=S variant=V setting=T        dev accuracy, mean ± std over seeds (or one value): 13.3 ± 3.8
    accuracy_range sweep=S [variant setting seed]         lowest to highest run: 0.0–2.0
    final_loss_range sweep=S [variant phase seed]         final training loss, 2 decimals: 0.49–0.60
    wall_time sweep=S [variant phase seed]                the runs' wall time, summed: 54 min 38 s
    wall_time_range sweep=S [variant phase seed]          shortest to longest run: 3 min 32 s–3 min 41 s
    london sweep=S                              answering "London" on the sweep's dev file, %: 5.0
    recall sweep=S variant=V [form=F]           dev birth places the pretrained model recalls from their
                                                own documents (experiments.memorization), %: 78.1;
                                                form continue (the default) or infill
    compare sweep=A,B variant=V[,W]             A's pretrained mean accuracy minus B's, ± its standard error, and
                                                the verdict (experiments.decisions): +4.2 ± 1.1 (better);
                                                variant=V,W compares A's V with B's W
    compare_paired sweep=A,B variant=V[,W]      the same, paired by seed (experiments.decisions.paired_gain): A
                                                finetuned B's own pretraining runs and answered its questions
    reference variant=V setting=T               the published reference accuracy, %: 8.2 or 21.6–30.6
    config sweep=S phase=P key=K [variant]      a config value shared by those runs: 120

A range whose ends print the same is one value. Anything else (an unknown name, key, sweep,
variant, setting, phase or seed; a selection with no runs; an unclosed `{{`) is one ReportError
naming the preface file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from experiments.baselines import Baselines
from experiments.decisions import gain, paired_gain
from experiments.formats import duration, mean_std, percent, plain, signed, signed_span, span
from experiments.grid import SETTING_PHASE, SETTINGS, phase_configs, variant_names
from experiments.reference import reference_values
from experiments.runs import ReportError, RunResult, Sweep

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


class PlaceholderError(ValueError):
    """What is wrong with one placeholder; fill_preface adds the file, line and placeholder."""


@dataclass(frozen=True)
class Placeholder:
    name: str
    params: dict[str, list[str]]


@dataclass(frozen=True)
class Context:
    """What placeholders are filled from: the report's sweeps (by slug) and their dev files' baselines."""

    sweeps: dict[str, Sweep]
    baselines: dict[str, Baselines]

    def selected_sweeps(self, p: Placeholder) -> list[Sweep]:
        for name in p.params["sweep"]:
            if name not in self.sweeps:
                raise PlaceholderError(f"unknown sweep {name!r} (this report's sweeps: {', '.join(self.sweeps)})")
        return [self.sweeps[name] for name in p.params["sweep"]]

    def one_sweep(self, p: Placeholder) -> Sweep:
        return self.selected_sweeps(p)[0]


def holds(sweeps: list[Sweep]) -> str:
    """The start of an error's "what is there" note: "sweep a holds" or "sweeps a, b hold"."""
    if len(sweeps) == 1:
        return f"sweep {sweeps[0].slug} holds"
    return f"sweeps {', '.join(s.slug for s in sweeps)} hold"


def choose(p: Placeholder, key: str, known: list, what: str) -> list:
    """The listed values of a selector, each checked against what is there (`what known`); all when absent."""
    if key not in p.params:
        return known
    chosen = []
    for text in p.params[key]:
        value = int(text) if key == "seed" and text.lstrip("-").isdigit() else text
        if value not in known:
            raise PlaceholderError(f"unknown {key} {text!r} ({what} {', '.join(map(str, known)) or 'none'})")
        chosen.append(value)
    return chosen


def union(lists) -> list:
    return list(dict.fromkeys(item for items in lists for item in items))


def selected_runs(context: Context, p: Placeholder, phases_of_settings: bool = False) -> list[RunResult]:
    """The runs a range or total counts: selected sweeps x variants x seeds x phases (or settings' phases)."""
    sweeps = context.selected_sweeps(p)
    what = holds(sweeps)
    variants = choose(p, "variant", union(s.variants for s in sweeps), what)
    seeds = choose(p, "seed", union(s.seeds for s in sweeps), what)
    if phases_of_settings:
        phases = [SETTING_PHASE[s] for s in choose(p, "setting", union(s.settings for s in sweeps), what)]
    else:
        phases = choose(p, "phase", union(phase_configs(s.settings) for s in sweeps), what)
    runs = [run for sweep in sweeps for (variant, seed, phase), run in sweep.runs.items()
            if variant in variants and seed in seeds and phase in phases]
    if not runs:
        raise PlaceholderError("selects no runs")
    return runs


def variant_with_both_settings(p: Placeholder, sweep: Sweep) -> str:
    [variant] = choose(p, "variant", sweep.variants, holds([sweep]))
    if set(sweep.settings) != set(SETTINGS):
        raise PlaceholderError(f"sweep {sweep.slug} has no gain: it ran only {', '.join(sweep.settings)}")
    return variant


def render_gain(context: Context, p: Placeholder) -> str:
    sweep = context.one_sweep(p)
    return signed(sweep.gain(variant_with_both_settings(p, sweep)))


def render_gain_range(context: Context, p: Placeholder) -> str:
    sweep = context.one_sweep(p)
    gains = sweep.gains(variant_with_both_settings(p, sweep))
    return signed_span(min(gains), max(gains))


def render_accuracy(context: Context, p: Placeholder) -> str:
    sweep = context.one_sweep(p)
    [variant] = choose(p, "variant", sweep.variants, holds([sweep]))
    [setting] = choose(p, "setting", sweep.settings, holds([sweep]))
    return mean_std(sweep.accuracies(variant, setting))


def render_accuracy_range(context: Context, p: Placeholder) -> str:
    values = [100 * run.accuracy["accuracy"] for run in selected_runs(context, p, phases_of_settings=True)]
    return span(percent(min(values)), percent(max(values)))


def render_final_loss_range(context: Context, p: Placeholder) -> str:
    values = [run.final_loss for run in selected_runs(context, p)]
    return span(f"{min(values):.2f}", f"{max(values):.2f}")


def render_wall_time(context: Context, p: Placeholder) -> str:
    return duration(sum(run.seconds for run in selected_runs(context, p)))


def render_wall_time_range(context: Context, p: Placeholder) -> str:
    values = [run.seconds for run in selected_runs(context, p)]
    return span(duration(min(values)), duration(max(values)))


def render_london(context: Context, p: Placeholder) -> str:
    return percent(100 * context.baselines[context.one_sweep(p).slug].london.accuracy)


def render_recall(context: Context, p: Placeholder) -> str:
    sweep = context.one_sweep(p)
    [variant] = choose(p, "variant", sweep.variants, holds([sweep]))
    if "pretrained" not in sweep.settings:
        raise PlaceholderError(f"sweep {sweep.slug} has no pretraining runs")
    [form] = p.params.get("form", ["continue"])
    runs = [sweep.runs[(variant, seed, "pretrain")] for seed in sweep.seeds]
    if any(run.memorization is None for run in runs):
        raise PlaceholderError(f"sweep {sweep.slug} has a pretraining run not measured on its questions "
                               "(memorization.json)")
    known = sorted({f for run in runs for f in run.memorization["recall"]})
    if any(form not in run.memorization["recall"] for run in runs):
        raise PlaceholderError(f"unknown recall form {form!r} (sweep {sweep.slug} measured {', '.join(known)})")
    return mean_std([run.recall(form) for run in runs])


def compared_pair(context: Context, p: Placeholder) -> tuple[Sweep, str, Sweep, str]:
    """A compare placeholder's candidate sweep and variant, then its reference's, on the same questions."""
    sweeps = context.selected_sweeps(p)
    if len(sweeps) != 2:
        raise PlaceholderError(f"compare takes two sweeps, a candidate and its reference, got {len(sweeps)}")
    variants = choose(p, "variant", union(s.variants for s in sweeps), holds(sweeps))
    if len(variants) > 2:
        raise PlaceholderError(f"compare takes one variant, or one for each sweep, got {len(variants)}")
    variants = variants * 2 if len(variants) == 1 else variants
    for sweep, variant in zip(sweeps, variants):
        if variant not in sweep.variants or "pretrained" not in sweep.settings:
            raise PlaceholderError(f"sweep {sweep.slug} has no pretrained runs of {variant}")
    (candidate, reference), (mine, theirs) = sweeps, variants
    if candidate.answers_key != reference.answers_key:
        raise PlaceholderError(f"sweeps {candidate.slug} and {reference.slug} answered different questions "
                               f"({candidate.answers}, {reference.answers})")
    return candidate, mine, reference, theirs


def render_compare(context: Context, p: Placeholder) -> str:
    """Any two sweeps by the Comparison table's rule, which compares each row with the first row only."""
    candidate, mine, reference, theirs = compared_pair(context, p)
    questions = candidate.runs[(mine, candidate.seeds[0], "finetune")].accuracy["total"]
    return gain(candidate.accuracies(mine, "pretrained"), reference.accuracies(theirs, "pretrained"), questions).describe()


def render_compare_paired(context: Context, p: Placeholder) -> str:
    """Two sweeps that finetuned the same pretraining runs, seed by seed on the same questions."""
    candidate, mine, reference, theirs = compared_pair(context, p)
    if not candidate.paired_with(mine, reference, theirs):
        raise PlaceholderError(f"sweeps {candidate.slug} and {reference.slug} are not paired: they did not finetune "
                               "the same pretraining runs for the same seeds")
    return paired_gain(candidate.correct(mine), reference.correct(theirs)).describe()


def render_reference(context: Context, p: Placeholder) -> str:
    [variant] = choose(p, "variant", variant_names(), "the variant registry holds")
    [setting] = choose(p, "setting", list(SETTINGS), "the settings are")
    values = reference_values(variant, setting)
    if not values:
        raise PlaceholderError(f"the reports give no reference result for {variant}, {setting}")
    return span(percent(min(values)), percent(max(values)))


def render_config(context: Context, p: Placeholder) -> str:
    [key] = p.params["key"]
    runs = selected_runs(context, p)
    if not all(_has_key(run.config, key) for run in runs):
        raise PlaceholderError(f"no config key {key!r} in those runs' config.yaml")
    values = {plain(run.setting(key)) for run in runs}
    if len(values) > 1:
        raise PlaceholderError(f"{key} differs between the selected runs ({', '.join(sorted(values))})")
    return values.pop()


def _has_key(tree: dict, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


@dataclass(frozen=True)
class Directive:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    render: Callable[[Context, Placeholder], str]
    single: tuple[str, ...] = ()  # keys that take exactly one value


RANGE_KEYS = ("variant", "phase", "seed")
DIRECTIVES = {
    "gain": Directive(("sweep", "variant"), (), render_gain, ("sweep", "variant")),
    "gain_range": Directive(("sweep", "variant"), (), render_gain_range, ("sweep", "variant")),
    "accuracy": Directive(("sweep", "variant", "setting"), (), render_accuracy, ("sweep", "variant", "setting")),
    "accuracy_range": Directive(("sweep",), ("variant", "setting", "seed"), render_accuracy_range),
    "final_loss_range": Directive(("sweep",), RANGE_KEYS, render_final_loss_range),
    "wall_time": Directive(("sweep",), RANGE_KEYS, render_wall_time),
    "wall_time_range": Directive(("sweep",), RANGE_KEYS, render_wall_time_range),
    "london": Directive(("sweep",), (), render_london, ("sweep",)),
    "recall": Directive(("sweep", "variant"), ("form",), render_recall, ("sweep", "variant", "form")),
    "compare": Directive(("sweep", "variant"), (), render_compare),
    "compare_paired": Directive(("sweep", "variant"), (), render_compare_paired),
    "reference": Directive(("variant", "setting"), (), render_reference, ("variant", "setting")),
    "config": Directive(("sweep", "phase", "key"), ("variant",), render_config, ("sweep", "phase", "key")),
}


def parse_placeholder(text: str) -> Placeholder:
    """`NAME key=value ...` checked against its directive: names, keys and how many values each takes."""
    name, *pairs = text.split()
    if name not in DIRECTIVES:
        raise PlaceholderError(f"unknown placeholder {name!r} (known: {', '.join(DIRECTIVES)})")
    directive = DIRECTIVES[name]
    params: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value or "" in value.split(","):
            raise PlaceholderError(f"expected key=value[,value...], got {pair!r}")
        if key not in (*directive.required, *directive.optional):
            raise PlaceholderError(f"{name} takes no key {key!r} (it takes "
                                   f"{', '.join((*directive.required, *directive.optional))})")
        if key in params:
            raise PlaceholderError(f"{key} given twice")
        params[key] = value.split(",")
    missing = [key for key in directive.required if key not in params]
    if missing:
        raise PlaceholderError(f"{name} needs {', '.join(f'{k}=' for k in missing)}")
    for key in directive.single:
        if len(params.get(key, ())) > 1:
            raise PlaceholderError(f"{name} takes one {key}, got {len(params[key])}")
    return Placeholder(name, params)


def check_closed(line: str) -> None:
    """A `{{` or `}}` left over once the placeholders are taken out is an unclosed placeholder."""
    leftover = PLACEHOLDER.sub("", line)
    if "{{" in leftover or "}}" in leftover:
        raise PlaceholderError("unclosed placeholder (a {{...}} opens and closes on one line)")


def fill_text(source: Path, text: str, render: Callable[[Placeholder], str]) -> str:
    """Each placeholder replaced by render's value; the first bad one is a ReportError at file:line."""
    def fill(match: re.Match) -> str:
        try:
            if not match.group(1).strip():
                raise PlaceholderError("empty placeholder")
            return render(parse_placeholder(match.group(1)))
        except PlaceholderError as exc:
            raise PlaceholderError(f"{match.group(0)}: {exc}") from None

    lines = []
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        try:
            check_closed(line)
            lines.append(PLACEHOLDER.sub(fill, line))
        except PlaceholderError as exc:
            raise ReportError(f"{source}:{number}: {exc}") from None
    return "".join(lines)


def check_preface(source: Path, text: str) -> None:
    """Syntax only (names, keys, closing braces), before the sweeps are read: a typo fails fast."""
    fill_text(source, text, lambda placeholder: "")


def fill_preface(source: Path, text: str, sweeps: list[Sweep], baselines: dict[str, Baselines]) -> str:
    """The preface with every placeholder replaced by its value from the sweeps."""
    context = Context({sweep.slug: sweep for sweep in sweeps}, baselines)
    return fill_text(source, text, lambda placeholder: DIRECTIVES[placeholder.name].render(context, placeholder))
