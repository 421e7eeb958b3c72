"""`python -m launcher.report SWEEP_DIR... --out docs/results.md`: the paper's table from run directories.

    python -m launcher.report runs/sweep/synthetic runs/sweep/real-reduced --out docs/results.md

For each sweep (a directory written by `python -m launcher.sweep` or `slurm/sweep.sh`) it reads every
run's resolved config (config.yaml), dev accuracy (accuracy.json), wall time and device (run.json)
and loss curve (TensorBoard events), and writes one Markdown section: dev accuracy per variant,
setting and seed with mean +- sample std over seeds, the pretraining gain, the constant-answer
baselines ("London", and the most common dev answer) and SPEC's reference results; the settings
that differ from SPEC's schedule (a reduced run says so at its top); the command that ran it; wall
time, device and commit per run; and loss-curve PNGs (matplotlib) for pretraining and finetuning
beside the Markdown file. `--predictions DIR` copies each finetuned run's dev predictions there.
A missing or unfinished run is one error line naming it; nothing is written until all are read.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shlex
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from data.atomic import write_text_atomically  # noqa: E402
from data.birthplaces import read_questions  # noqa: E402
from data.errors import DataError  # noqa: E402
from launcher.run_record import RECORD_NAME, read_attempts, source_commit  # noqa: E402
from launcher.sweep import SETTINGS, VARIANTS, cell_dir, phase_configs  # noqa: E402


PROG = "python -m launcher.report"


class ReportError(ValueError):
    """A sweep or run that cannot be reported: one line naming the path and what is missing."""


SETTING_TITLES = {"scratch": "no pretraining", "pretrained": "pretrain, then finetune"}
SETTING_RUN = {"scratch": "finetune_scratch", "pretrained": "finetune"}
# SPEC's reference results (dev set, 500 lines, full schedule), in percent, one value per report.
SPEC_REFERENCE = {
    ("vanilla", "scratch"): [0.6, 1.0, 1.8, 1.8, 2.0],
    ("vanilla", "pretrained"): [21.6, 23.8, 26.6, 30.6],
    ("synthesizer", "pretrained"): [6.8, 7.0, 8.0],
    ("perceiver", "pretrained"): [8.2],
}
SPEC_LONDON = 5.0
# SPEC's reference model and schedule: what a run must match to be called full scale.
SPEC_MODEL = {"data.block_size": 128, "model.n_layer": 4, "model.n_head": 8, "model.n_embd": 256,
              "model.dropout": 0.1, "model.bottleneck_dim": 32}
SPEC_SCHEDULE = {
    "pretrain": {"train.epochs": 650, "train.global_batch_size": 128, "train.learning_rate": 6e-3},
    "finetune": {"train.epochs": 10, "train.global_batch_size": 256, "train.learning_rate": 6e-4},
    "finetune_scratch": {"train.epochs": 75, "train.global_batch_size": 256, "train.learning_rate": 6e-4},
}
SPEC_DEV_LINES = 500
COLORS = {"vanilla": "tab:blue", "synthesizer": "tab:orange", "perceiver": "tab:green", "rope": "tab:red"}


@dataclass
class RunResult:
    """What the report needs of one run directory."""

    path: Path
    phase_config: str
    config: dict
    attempts: list[dict]
    loss: list[tuple[int, float]]
    accuracy: dict | None = None

    @property
    def seconds(self) -> float:
        return sum(a["seconds"] for a in self.attempts)

    @property
    def device(self) -> str:
        return self.attempts[-1]["device"]

    @property
    def commit(self) -> str:
        return self.attempts[-1].get("commit") or "unknown"

    @property
    def date(self) -> str:
        return self.attempts[0]["started"][:10]

    def setting(self, key: str):
        value = self.config
        for part in key.split("."):
            value = value[part]
        return value


@dataclass
class Sweep:
    path: Path
    manifest: dict
    runs: dict[tuple[str, int, str], RunResult] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.path.name

    @property
    def variants(self) -> list[str]:
        return [v for v in VARIANTS if v in self.manifest["variants"]]

    @property
    def seeds(self) -> list[int]:
        return sorted(self.manifest["seeds"])

    @property
    def settings(self) -> list[str]:
        return [s for s in SETTINGS if s in self.manifest["settings"]]

    def accuracies(self, variant: str, setting: str) -> list[float]:
        return [100 * self.runs[(variant, seed, SETTING_RUN[setting])].accuracy["accuracy"] for seed in self.seeds]

    def any_run(self, phase_config: str) -> RunResult:
        return next(r for (_, _, p), r in self.runs.items() if p == phase_config)


def read_loss(run_dir: Path) -> list[tuple[int, float]]:
    """train/loss from the run's TensorBoard event files; a step logged twice (a resumed run) keeps its last value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = run_dir / "tensorboard"
    if not events.is_dir():
        raise ReportError(f"{run_dir}: no tensorboard/ directory")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
    accumulator.Reload()
    if "train/loss" not in accumulator.Tags()["scalars"]:
        raise ReportError(f"{events}: no train/loss scalars")
    by_step = {event.step: event.value for event in accumulator.Scalars("train/loss")}
    return sorted(by_step.items())


def read_run(run_dir: Path, phase_config: str, needs_accuracy: bool) -> RunResult:
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ReportError(f"{run_dir}: no config.yaml (the run never started)")
    attempts = read_attempts(run_dir / RECORD_NAME)
    if not any(a.get("completed") for a in attempts):
        raise ReportError(f"{run_dir}: not completed ({RECORD_NAME} records no completed attempt); finish the sweep first")
    result = RunResult(run_dir, phase_config, yaml.safe_load(config_path.read_text(encoding="utf-8")), attempts,
                       read_loss(run_dir))
    if needs_accuracy:
        if not (run_dir / "accuracy.json").is_file():
            raise ReportError(f"{run_dir / 'accuracy.json'}: missing (the run wrote no dev accuracy; were eval.questions answered?)")
        try:
            result.accuracy = json.loads((run_dir / "accuracy.json").read_text(encoding="utf-8"))
            float(result.accuracy["accuracy"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReportError(f"{run_dir / 'accuracy.json'}: unreadable ({exc})") from None
        predictions = run_dir / result.setting("eval.predictions")
        if not predictions.is_file():
            raise ReportError(f"{predictions}: missing (the run's eval.predictions)")
    return result


def read_sweep(path: Path) -> Sweep:
    manifest_path = path / "sweep.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for key in ("variants", "seeds", "settings", "command"):
            manifest[key]
    except FileNotFoundError:
        raise ReportError(f"{path}: no sweep.json (not a sweep directory; python -m launcher.sweep writes one)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{manifest_path}: unreadable ({exc})") from None
    sweep = Sweep(path, manifest)
    for variant in sweep.variants:
        for seed in sweep.seeds:
            for phase_config in phase_configs(sweep.settings):
                run_dir = cell_dir(path, variant, seed) / phase_config
                sweep.runs[(variant, seed, phase_config)] = read_run(run_dir, phase_config, phase_config != "pretrain")
    return sweep


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def spec_reference(variant: str, setting: str) -> str:
    values = SPEC_REFERENCE.get((variant, setting))
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{min(values):.1f}–{max(values):.1f} ({len(values)} reports)"


def baselines(questions_file: Path) -> tuple[float, str, float]:
    """("London" accuracy, the most common dev answer, its accuracy), in percent."""
    try:
        questions = read_questions(questions_file, require_answers=True)
    except DataError as exc:
        raise ReportError(f"{exc} (the sweep's eval.questions; run the report from the directory the sweep ran in)") from None
    answers = Counter(q.answer for q in questions)
    common, count = answers.most_common(1)[0]
    return 100 * answers["London"] / len(questions), common, 100 * count / len(questions)


def differences_from_spec(sweep: Sweep, dev_lines: int) -> list[str]:
    """Each setting of this sweep that is not SPEC's, as "key value (SPEC: value)"."""
    found = []
    any_run = next(iter(sweep.runs.values()))
    for key, spec in SPEC_MODEL.items():
        if any_run.setting(key) != spec:
            found.append(f"`{key}` {any_run.setting(key)} (SPEC: {spec})")
    for phase_config, keys in SPEC_SCHEDULE.items():
        runs = [r for (_, _, p), r in sweep.runs.items() if p == phase_config]
        if not runs:
            continue
        for key, spec in keys.items():
            value = runs[0].setting(key)
            if not math.isclose(float(value), float(spec)):
                found.append(f"{phase_config} `{key}` {value} (SPEC: {spec})")
        if runs[0].setting("train.final_tokens") is not None:
            found.append(f"{phase_config} `train.final_tokens` {runs[0].setting('train.final_tokens')} "
                         "(SPEC: 200 x pretraining documents x block_size)")
        if runs[0].setting("train.max_steps") is not None:
            found.append(f"{phase_config} `train.max_steps` {runs[0].setting('train.max_steps')} (SPEC: none)")
    if dev_lines != SPEC_DEV_LINES:
        found.append(f"dev set of {dev_lines} questions (SPEC's real dev set: {SPEC_DEV_LINES})")
    return found


def duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def loss_figure(sweep: Sweep, phase_configs: list[str], titles: list[str]) -> bytes:
    """Training loss against optimizer step: one colour per variant, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(phase_configs), figsize=(6.4 * len(phase_configs), 4.2), squeeze=False)
    for axis, phase_config, title in zip(axes[0], phase_configs, titles):
        for variant in sweep.variants:
            for i, seed in enumerate(sweep.seeds):
                steps, values = zip(*sweep.runs[(variant, seed, phase_config)].loss)
                axis.plot(steps, values, color=COLORS[variant], alpha=0.8, linewidth=1.0,
                          label=variant if i == 0 else None)
        axis.set_title(title)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("training loss (cross-entropy, nats)")
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.2g"))
        # Minor ticks at 2, 3 and 5 only: labelling every one crowds a decade into a smear.
        axis.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 3.0, 5.0)))
        axis.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%.2g"))
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(title=f"seeds {', '.join(map(str, sweep.seeds))}")
    fig.suptitle(sweep.manifest.get("label") or sweep.slug)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def accuracy_table(sweep: Sweep, london: float, common: str, common_share: float) -> list[str]:
    seed_columns = " | ".join(f"seed {s}" for s in sweep.seeds)
    lines = [f"| variant | setting | {seed_columns} | mean ± std | SPEC (real data, full schedule) |",
             "|---|---|" + "---:|" * len(sweep.seeds) + "---:|---:|"]
    for variant in sweep.variants:
        for setting in sweep.settings:
            values = sweep.accuracies(variant, setting)
            cells = " | ".join(f"{v:.1f}" for v in values)
            lines.append(f"| {variant} | {SETTING_TITLES[setting]} | {cells} | {mean_std(values)} | {spec_reference(variant, setting)} |")
    blank = " | ".join("" for _ in sweep.seeds)
    lines.append(f"| constant \"London\" | baseline | {blank} | {london:.1f} | {SPEC_LONDON:.1f} |")
    lines.append(f"| most common dev answer ({common}) | baseline | {blank} | {common_share:.1f} | {SPEC_LONDON:.1f} (London) |")
    return lines + [""]


def gain_table(sweep: Sweep) -> list[str]:
    """Pretrained minus no-pretraining accuracy per variant; SPEC's reports give only vanilla's baseline."""
    lines = ["Pretraining gain: mean accuracy after pretraining minus mean accuracy without it, in points "
             "(seeds paired by index; the range is the smallest and largest per-seed gain).", "",
             "| variant | gain | per-seed range | SPEC (means of its reports) |", "|---|---:|---:|---:|"]
    spec_scratch = statistics.mean(SPEC_REFERENCE[("vanilla", "scratch")])
    for variant in sweep.variants:
        pre, scratch = sweep.accuracies(variant, "pretrained"), sweep.accuracies(variant, "scratch")
        gains = [a - b for a, b in zip(pre, scratch)]
        spec_pre = SPEC_REFERENCE.get((variant, "pretrained"))
        spec_gain = f"{statistics.mean(spec_pre) - spec_scratch:+.1f} (against vanilla's no-pretraining)" if spec_pre else "—"
        lines.append(f"| {variant} | {statistics.mean(pre) - statistics.mean(scratch):+.1f} | "
                     f"{min(gains):+.1f} to {max(gains):+.1f} | {spec_gain} |")
    return lines + [""]


def runs_table(sweep: Sweep) -> list[str]:
    lines = ["Runs:", "", "| run | device | wall time | steps | final loss | commit | date |", "|---|---|---:|---:|---:|---|---|"]
    for (variant, seed, phase_config), run in sweep.runs.items():
        restarts = f" ({len(run.attempts)} attempts)" if len(run.attempts) > 1 else ""
        lines.append(f"| {variant} seed {seed} {phase_config} | {run.device} | {duration(run.seconds)}{restarts} | "
                     f"{run.loss[-1][0]} | {run.loss[-1][1]:.4f} | {run.commit} | {run.date} |")
    return lines + [""]


def loss_figures(sweep: Sweep, figures_link: str) -> tuple[list[str], dict[str, bytes]]:
    """The pretraining figure and the finetuning figure (pretrained and from scratch side by side)."""
    lines: list[str] = []
    figures: dict[str, bytes] = {}
    phases = {p for _, _, p in sweep.runs}
    panels = [(p, t) for p, t in (("finetune", "finetuning the pretrained model"),
                                  ("finetune_scratch", "finetuning from random weights (no pretraining)")) if p in phases]
    if "pretrain" in phases:
        figures[f"{sweep.slug}-pretrain.png"] = loss_figure(sweep, ["pretrain"], ["span-corruption pretraining"])
    if panels:
        figures[f"{sweep.slug}-finetune.png"] = loss_figure(sweep, [p for p, _ in panels], [t for _, t in panels])
    for name in figures:
        lines += [f"![{name.removesuffix('.png').replace('-', ' ')} loss]({figures_link}/{name})", ""]
    return lines, figures


def sweep_section(sweep: Sweep, figures_link: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown section for one sweep and its figures (file name -> PNG bytes)."""
    finetuned = next(r for r in sweep.runs.values() if r.accuracy is not None)
    questions_file = Path(finetuned.setting("eval.questions"))
    london, common, common_share = baselines(questions_file)
    dev_lines = finetuned.accuracy["total"]
    reduced = differences_from_spec(sweep, dev_lines)
    m = sweep.manifest
    lines = [f"## {m.get('label') or sweep.slug}", ""]
    if reduced:
        lines += ["**Reduced relative to SPEC**, so compare directions, not numbers, with SPEC's column: "
                  + "; ".join(reduced) + ".", ""]
    else:
        lines += ["SPEC's full model and schedule.", ""]
    any_run = next(iter(sweep.runs.values()))
    lines += [
        f"- Sweep: `{m['command']}` (sweep directory `{sweep.path}`, started {m.get('started', '?')}, commit {m.get('commit') or 'unknown'})",
        f"- Data: dev questions `{questions_file}` ({dev_lines} lines); scale `{m.get('scale')}`; model "
        f"{any_run.setting('model.n_layer')} layers x {any_run.setting('model.n_embd')} wide, "
        f"{any_run.setting('model.n_head')} heads, dropout {any_run.setting('model.dropout')}",
        f"- Devices: {', '.join(sorted({r.device for r in sweep.runs.values()}))}",
        f"- Wall time, all {len(sweep.runs)} runs: {duration(sum(r.seconds for r in sweep.runs.values()))}",
        "",
        "Dev accuracy (%), exact match of the greedy answer:",
        "",
    ]
    lines += accuracy_table(sweep, london, common, common_share)
    if set(sweep.settings) == set(SETTINGS):
        lines += gain_table(sweep)
    figure_lines, figures = loss_figures(sweep, figures_link)
    lines += figure_lines + runs_table(sweep)
    return "\n".join(lines), figures


def render(sweeps: list[Sweep], out: Path, figures_dir: Path, argv: list[str], preface: str = "") -> tuple[str, dict[str, bytes]]:
    figures_link = Path(os.path.relpath(figures_dir.resolve(), out.parent.resolve())).as_posix()
    today = datetime.now(timezone.utc).date().isoformat()
    lines = [
        "# Results",
        "",
        f"Generated by `{shlex.join(['python', '-m', 'launcher.report', *argv])}` on {today} "
        f"(commit {source_commit() or 'unknown'}) from the sweep directories below; each section names the command "
        "that made its runs. Regenerate: run those sweeps, then this command. Accuracy is on the dev file "
        "each section names; SPEC's column is the reference results of `../shared/SPEC.md` (real data, 500 dev "
        "questions, full schedule), so for the synthetic world and reduced schedules only the direction compares.",
        "",
    ]
    if preface.strip():
        lines += [preface.strip(), ""]
    figures: dict[str, bytes] = {}
    for sweep in sweeps:
        section, sweep_figures = sweep_section(sweep, str(figures_link))
        lines.append(section)
        figures.update(sweep_figures)
    return "\n".join(lines).rstrip() + "\n", figures


def write_bytes_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)


def copy_predictions(sweeps: list[Sweep], directory: Path) -> list[Path]:
    written = []
    for sweep in sweeps:
        target = directory / sweep.slug
        target.mkdir(parents=True, exist_ok=True)
        for (variant, seed, phase_config), run in sweep.runs.items():
            if run.accuracy is None:
                continue
            source = run.path / run.setting("eval.predictions")
            path = target / f"{variant}-seed{seed}-{phase_config}-dev-predictions.txt"
            write_text_atomically(path, source.read_text(encoding="utf-8"))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep directories, one report section each, in order")
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--figures", type=Path, help="where the PNGs go (default: figures/ beside --out)")
    parser.add_argument("--predictions", type=Path, help="copy each finetuned run's dev predictions here, per sweep")
    parser.add_argument("--preface", type=Path, help="Markdown placed after the header: what the sweeps show, what is missing")
    args = parser.parse_args(argv)
    figures_dir = args.figures or args.out.parent / "figures"
    slugs = [path.name for path in args.sweeps]
    try:
        if len(set(slugs)) != len(slugs):
            raise ReportError(f"sweep directories share a name ({', '.join(slugs)}); their figures would collide")
        preface = ""
        if args.preface:
            try:
                preface = args.preface.read_text(encoding="utf-8")
            except OSError as exc:
                raise ReportError(f"--preface {args.preface}: {exc.strerror}") from None
        sweeps = [read_sweep(path) for path in args.sweeps]
        markdown, figures = render(sweeps, args.out, figures_dir, argv, preface)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        figures_dir.mkdir(parents=True, exist_ok=True)
        for name, payload in figures.items():
            write_bytes_atomically(figures_dir / name, payload)
        if args.predictions:
            copy_predictions(sweeps, args.predictions)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(args.out, markdown)
    except OSError as exc:
        print(f"error: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(sweeps)} sweep(s), {sum(len(s.runs) for s in sweeps)} runs) and {len(figures)} figures in {figures_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
