"""The Markdown tables of one sweep's section: dev accuracy, pretraining gain, and the runs."""

from __future__ import annotations

import statistics

from experiments.baselines import Baselines
from experiments.formats import duration, loss, mean_std, percent, plain, rate, signed, signed_span
from experiments.grid import SETTING_TITLES
from experiments.reference import SPEC_LONDON, SPEC_SCRATCH, reference_gain, spec_reference
from experiments.decisions import MARGIN, gain, paired_gain
from experiments.runs import RunResult, Sweep, lookup
from launcher.machine_share import SHARED_CORES

SHARED = " †"
SHARED_NOTE = (f"† the machine was shared: other processes used more than {SHARED_CORES} cores on average while "
               "the run ran (run.json `others_cores`), so its wall time is not the time it takes alone.")


def shared_mark(runs: list[RunResult]) -> str:
    return SHARED if any(r.shared for r in runs) else ""


def cpu_time(runs: list[RunResult]) -> str:
    """Mean CPU time of the runs' own processes, or a dash where a run did not record it."""
    values = [r.cpu_seconds for r in runs]
    return "—" if None in values else duration(statistics.mean(values))


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
    lines = ["Runs:", "", "| run | device | wall time | steps | tokens/s | final loss | commit | date | CPU time | "
             "others' cores |", "|---|---|---:|---:|---:|---:|---|---|---:|---:|"]
    for (variant, seed, phase_config), run in sweep.runs.items():
        restarts = f" ({len(run.attempts)} attempts)" if len(run.attempts) > 1 else ""
        others = "—" if run.others_cores is None else f"{run.others_cores:.2f}"
        lines.append(f"| {variant} seed {seed} {phase_config} | {run.device} | "
                     f"{duration(run.seconds)}{restarts}{shared_mark([run])} | {run.loss[-1][0]} | "
                     f"{rate(run.tokens_per_second)} | {loss(run.final_loss)} | {run.commit} | {run.date} | "
                     f"{cpu_time([run])} | {others} |")
    lines.append("")
    if any(run.shared for run in sweep.runs.values()):
        lines += [SHARED_NOTE, ""]
    return lines


# Keys that say where a run's files are, not what it does, and the variant, which every row names
# beside its sweep: left out of a recipe's description.
PLACE_KEYS = ("run_dir", "seed", "init_from", "model.variant", "data.corpus", "data.finetune", "eval.", "train.checkpoint_every",
              "train.log_every", "train.resume", "distributed.")


# Keys only pretraining reads (launcher.config says "pretraining only"): a finetune's copy of them is inert;
# data.masking too, unless the finetune replays documents (data.replay).
PRETRAINING_ONLY = ("data.question_mix", "data.objective", "data.augment")


def recipe_keys(sweeps: list[Sweep], skip: tuple[str, ...] = ()) -> list[str]:
    """Config keys whose values differ between the sweeps (what the comparison varies): pretraining
    keys as they are, finetuning keys as "finetune:KEY"; keys starting with one of `skip` left out."""
    from launcher.config import config_differences

    keys: list[str] = []
    finetunes = [sweep.phase_run("finetune").config for sweep in sweeps]
    replaying = any((lookup(config, "data.replay") or 0) > 0 for config in finetunes)
    finetune_inert = PRETRAINING_ONLY + (() if replaying else ("data.masking",))
    for phase, prefix, inert in (("pretrain", "", skip), ("finetune", "finetune:", finetune_inert)):
        configs = [sweep.phase_run(phase).config for sweep in sweeps]
        for other in configs[1:]:
            for key in config_differences(configs[0], other):
                if f"{prefix}{key}" not in keys and not key.startswith(PLACE_KEYS + inert):
                    keys.append(f"{prefix}{key}")
    return keys


def recipe(sweep: Sweep, keys: list[str]) -> str:
    """The sweep's values of the recipe keys, e.g. "`data.masking` salient, `finetune:train.epochs` 10"."""
    def value(key: str) -> object:
        phase, _, name = key.rpartition(":")
        return lookup(sweep.phase_run(phase or "pretrain").config, name)

    return ", ".join(f"`{key}` {plain(value(key))}" for key in keys) or "—"


def comparison_table(sweeps: list[Sweep], baselines: dict[str, Baselines]) -> list[str]:
    """One row per sweep with pretraining: its recipe, accuracy with and without pretraining, what
    pretraining stored, and its cost (pretraining wall time and tokens/s; the pretrain -> finetune
    -> evaluate pipeline's wall time per seed), and its gain over the first row scored on the same
    answers file (a dev sweep beside selection sweeps is its own reference): by the rule recipes are
    chosen by, and, where the row finetuned the first row's own pretraining runs, paired by seed."""
    keys = recipe_keys(sweeps)
    references: dict[str, tuple[Sweep, str]] = {}  # answers file -> the first row on it (sweep, variant)
    lines = ["| sweep | recipe | answers | seeds | pretrained | no pretraining | gain | London / most common | "
             "recall from own text | pretrain wall time | tokens/s | final pretrain loss | pipeline wall time | "
             f"pipeline CPU time | against the first row on the same answers (± SE; counts beyond {MARGIN:g} SE) | "
             "paired by seed, where it finetuned the first row's pretraining runs |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sweep in sweeps:
        described = recipe(sweep, keys)
        constant = baselines[sweep.slug]
        constants = f"{percent(100 * constant.london.accuracy)} / {percent(100 * constant.most_common.accuracy)}"
        for variant in sweep.variants:
            pre = sweep.accuracies(variant, "pretrained")
            scratch = sweep.accuracies(variant, "scratch") if "scratch" in sweep.settings else []
            runs = [sweep.runs[(variant, seed, "pretrain")] for seed in sweep.seeds]
            finetunes = [sweep.runs[(variant, seed, "finetune")] for seed in sweep.seeds]
            recalls = [r.recall() for r in runs]
            recall = mean_std(recalls) if None not in recalls else "—"
            rates = [r.tokens_per_second for r in runs]
            questions = finetunes[0].accuracy["total"]
            against = paired = "—"  # the first row on an answers file is the reference of the later ones
            if sweep.answers_key in references:
                reference, theirs = references[sweep.answers_key]
                against = gain(pre, reference.accuracies(theirs, "pretrained"), questions).describe()
                if sweep.paired_with(variant, reference, theirs):
                    paired = paired_gain(sweep.correct(variant), reference.correct(theirs)).describe()
            else:
                references[sweep.answers_key] = (sweep, variant)
            lines.append(
                f"| {sweep.manifest.get('label') or sweep.slug} ({variant}) | {described} | "
                f"`{finetunes[0].setting('eval.questions')}` | {len(sweep.seeds)} | {mean_std(pre)} | "
                f"{mean_std(scratch) if scratch else '—'} | "
                f"{signed(sweep.gain(variant)) if scratch else '—'} | {constants} | {recall} | "
                f"{duration(statistics.mean(r.seconds for r in runs))}{shared_mark(runs)} | "
                f"{rate(statistics.mean(rates)) if None not in rates else '—'} | "
                f"{loss(statistics.mean(r.final_loss for r in runs))} | "
                f"{duration(statistics.mean(p.seconds + f.seconds for p, f in zip(runs, finetunes)))}"
                f"{shared_mark(runs + finetunes)} | {pipeline_cpu_time(runs, finetunes)} | {against} | {paired} |")
    lines.append("")
    if any(r.shared for sweep in sweeps for r in sweep.runs.values()):
        lines += [SHARED_NOTE, ""]
    return lines


def pipeline_cpu_time(pretrains: list[RunResult], finetunes: list[RunResult]) -> str:
    values = [p.cpu_seconds + f.cpu_seconds for p, f in zip(pretrains, finetunes)
              if p.cpu_seconds is not None and f.cpu_seconds is not None]
    return duration(statistics.mean(values)) if len(values) == len(pretrains) else "—"
