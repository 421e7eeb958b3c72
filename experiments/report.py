"""`python -m experiments.report SWEEP_DIR... --out docs/results.md`: the paper's table from run directories.

    python -m experiments.report runs/sweep/synthetic runs/sweep/real-reduced --out docs/results.md \\
        --preface docs/results-preface.md

For each sweep (a directory written by `python -m experiments.sweep` or `slurm/sweep.sh`) it reads
every run's resolved config (config.yaml), dev accuracy (accuracy.json), wall time and device
(run.json) and loss curve (TensorBoard events), and writes one Markdown section: dev accuracy per
variant, setting and seed with mean +- sample std over seeds, the pretraining gain, the
constant-answer baselines ("London", and the most common dev answer) and the published reference
results; the settings that differ from the reference configs (a reduced run says so at its top);
the command that ran it; wall time, device and commit per run; and loss-curve PNGs (matplotlib)
for pretraining and finetuning beside the Markdown file. Several sweeps also get a Comparison table
(each recipe against the first row, with its standard error: experiments.decisions) and, where
sweeps differ only in the pretraining budget, Curves of accuracy against CPU time
(experiments.curves). A run whose machine was shared is marked †. `--preface FILE` puts Markdown under the
title, its {{...}} placeholders filled from the sweeps (see experiments/preface.py for the
language). `--predictions DIR` copies each finetuned run's dev predictions there. A missing or
unfinished run, or a bad placeholder, is one error line naming its file; nothing is written until
all are read.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from data.atomic import write_text_atomically
from data.errors import DataError
from experiments.baselines import Baselines, constant_baselines
from experiments.curves import curves_section
from experiments.figures import loss_figures
from experiments.formats import duration
from experiments.grid import SETTINGS
from experiments.preface import check_preface, fill_preface
from experiments.reference import differences_from_spec
from experiments.runs import ReportError, Sweep, read_sweep
from experiments.tables import accuracy_table, comparison_table, gain_table, runs_table
from launcher.run_record import source_commit

PROG = "python -m experiments.report"
REFERENCE_DOC = "docs/experiment.md"


def sweep_baselines(sweep: Sweep) -> Baselines:
    """The constant-answer baselines on the dev file the sweep's runs answered."""
    questions_file = Path(sweep.finetuned_run().setting("eval.questions"))
    try:
        return constant_baselines(questions_file)
    except DataError as exc:
        raise ReportError(f"{exc} (the sweep's eval.questions; run the report from the directory "
                          "the sweep ran in)") from None


def sweep_section(sweep: Sweep, baselines: Baselines, figures_link: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown section for one sweep and its figures (file name -> PNG bytes)."""
    finetuned = sweep.finetuned_run()
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
        f"- Sweep: `{m['command']}` (sweep directory `{sweep.path}`, started {m.get('started', '?')}, "
        f"commit {m.get('commit') or 'unknown'})",
        f"- Data: dev questions `{finetuned.setting('eval.questions')}` ({dev_lines} lines); "
        f"scale `{m.get('scale')}`; model "
        f"{any_run.setting('model.n_layer')} layers x {any_run.setting('model.n_embd')} wide, "
        f"{any_run.setting('model.n_head')} heads, dropout {any_run.setting('model.dropout')}",
        f"- Devices: {', '.join(sorted({r.device for r in sweep.runs.values()}))}",
        f"- Wall time, all {len(sweep.runs)} runs: {duration(sum(r.seconds for r in sweep.runs.values()))}"
        + (f" (the pretraining runs are `{m['pretrained_from']}`'s, finetuned here: --pretrained-from)"
           if m.get("pretrained_from") else ""),
        "",
        "Dev accuracy (%), exact match of the greedy answer:",
        "",
    ]
    lines += accuracy_table(sweep, baselines)
    if set(sweep.settings) == set(SETTINGS):
        lines += gain_table(sweep)
    figure_lines, figures = loss_figures(sweep, figures_link)
    lines += figure_lines + runs_table(sweep)
    return "\n".join(lines), figures


def render(sweeps: list[Sweep], baselines: dict[str, Baselines], out: Path, figures_dir: Path, argv: list[str],
           preface: str = "") -> tuple[str, dict[str, bytes]]:
    """The whole report (Markdown) and every figure, in memory: nothing is written here."""
    figures_link = Path(os.path.relpath(figures_dir.resolve(), out.parent.resolve())).as_posix()
    today = datetime.now(timezone.utc).date().isoformat()
    lines = [
        "# Results",
        "",
        f"Generated by `{shlex.join([*PROG.split(), *argv])}` on {today} "
        f"(commit {source_commit() or 'unknown'}) from the sweep directories below; each section names the command "
        "that made its runs. Regenerate: run those sweeps, then this command. Accuracy is on the dev file "
        f"each section names; the SPEC column holds the reference results listed in `{REFERENCE_DOC}` (real data, "
        "500 dev questions, full schedule), so for the synthetic world and reduced schedules only the direction "
        "compares.",
        "",
    ]
    if preface.strip():
        lines += [preface.strip(), ""]
    compared = [sweep for sweep in sweeps if "pretrained" in sweep.settings]
    if compared:
        lines += ["## Comparison", "",
                  "Each sweep's pretrained runs, one row per variant: what its pretraining does differently from the "
                  "first row's (the recipe), accuracy (%) on the answers file it was scored on (a selection split's "
                  "held-out training questions, or the dev file), mean ± std over seeds, the constant-answer "
                  "baselines on the same file, how many of those people's birth places the pretrained model "
                  "recalls from their own document (experiments.memorization), and the cost: pretraining wall "
                  "time, its median tokens/s and final loss, and the wall time of pretraining + finetuning + "
                  "evaluation per seed. The next-to-last column compares each row with the first row scored on "
                  "the same answers file (accuracies on different questions do not compare) as independent means, "
                  "the rule recipes are chosen by; the last column pairs them seed by seed where the row finetuned "
                  "the first row's own pretraining runs (experiments.decisions).", ""]
        lines += comparison_table(compared, baselines)
    curve_lines, figures = curves_section(compared, figures_link)
    lines += curve_lines
    for sweep in sweeps:
        section, sweep_figures = sweep_section(sweep, baselines[sweep.slug], figures_link)
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


def read_preface(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"--preface {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ReportError(f"--preface {path}: not valid UTF-8 ({exc.reason})") from None
    check_preface(path, text)
    return text


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep directories, one report section each, in order")
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--figures", type=Path, help="where the PNGs go (default: figures/ beside --out)")
    parser.add_argument("--predictions", type=Path, help="copy each finetuned run's dev predictions here, per sweep")
    parser.add_argument("--preface", type=Path,
                        help="Markdown placed after the header, its {{...}} placeholders filled from the sweeps")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    figures_dir = args.figures or args.out.parent / "figures"
    slugs = [path.name for path in args.sweeps]
    try:
        if len(set(slugs)) != len(slugs):
            raise ReportError(f"sweep directories share a name ({', '.join(slugs)}); their figures would collide")
        preface = read_preface(args.preface)
        sweeps = [read_sweep(path) for path in args.sweeps]
        baselines = {sweep.slug: sweep_baselines(sweep) for sweep in sweeps}
        if preface:
            preface = fill_preface(args.preface, preface, sweeps, baselines)
        markdown, figures = render(sweeps, baselines, args.out, figures_dir, argv, preface)
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
    runs = sum(len(s.runs) for s in sweeps)
    print(f"wrote {args.out} ({len(sweeps)} sweep(s), {runs} runs) and {len(figures)} figures in {figures_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
