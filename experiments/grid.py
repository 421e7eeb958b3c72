"""The grid of a sweep: which runs it is made of, where each one lives, and whether it already ran.

A sweep crosses variants x seeds x settings. A setting is one way to reach a finetuned model:
"pretrained" runs pretrain then finetune from its export, "scratch" runs finetune_scratch from
random weights. Each (variant, seed) cell lives in OUT/<variant>/seed<seed>/, one directory per
phase config. The sweep (experiments.sweep), slurm/sweep.sh (through `--plan`) and the report
(experiments.runs) all find runs through this module, so the layout is written down once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from data.corpus import open_corpus
from data.errors import DataError
from data.vocab import Vocabulary
from launcher.config import ConfigError, RunConfig, config_differences, load_config, to_yaml, with_defaults
from launcher.phases import check_question_files
from launcher.run_record import RECORD_NAME, read_attempts

SETTINGS = ("scratch", "pretrained")
SETTING_TITLES = {"scratch": "no pretraining", "pretrained": "pretrain, then finetune"}
# The run whose dev accuracy is the setting's result.
SETTING_PHASE = {"scratch": "finetune_scratch", "pretrained": "finetune"}
PHASE_CONFIGS = ("pretrain", "finetune", "finetune_scratch")  # the files of a scale directory
DATA_FILES = {"corpus": "wiki.txt", "finetune": "birth_places_train.tsv", "questions": "birth_dev.tsv"}


def variant_names() -> list[str]:
    """The registered variants, in registry order, read now: a variant registered after import
    (as a test does) is part of the grid without touching this package."""
    from model import VARIANTS

    return list(VARIANTS)


@dataclass(frozen=True)
class Run:
    """One launch of launcher/train.py: a phase of one (variant, seed) cell of the grid."""

    variant: str
    seed: int
    phase_config: str  # pretrain, finetune or finetune_scratch
    configs: tuple[Path, ...]
    overrides: tuple[str, ...]
    config: RunConfig

    @property
    def name(self) -> str:
        return f"{self.variant} seed {self.seed} {self.phase_config}"

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)


def cell_dir(out: Path, variant: str, seed: int) -> Path:
    return out / variant / f"seed{seed}"


def phase_dir(out: Path, variant: str, seed: int, phase_config: str, pretrained_from: Path | None = None) -> Path:
    """Where a run of the grid lives; a sweep with --pretrained-from keeps its pretraining in that sweep's cells."""
    borrowed = pretrained_from is not None and phase_config == "pretrain"
    return cell_dir(pretrained_from if borrowed else out, variant, seed) / phase_config


def questions_key(path: str | Path) -> str:
    """One spelling of a questions file, however a sweep was given it (relative or absolute): what
    tells whether two accuracies or measurements are on the same questions."""
    return os.path.abspath(path)


MEMORIZATION_FILE = "memorization.json"  # what a pretraining stored, measured on one questions file


def memorization_files(cell: Path, pretrain_dir: Path) -> list[Path]:
    """Where a cell's measurement of what its pretraining stored may be, the one to write first.

    A cell that holds its pretraining keeps it in that run's directory. A cell whose pretraining is
    another sweep's (--pretrained-from) keeps its own in the cell: that run's file, measured on the
    other sweep's questions, is never rewritten, and is read only where the questions are the same."""
    own = pretrain_dir / MEMORIZATION_FILE
    return [own] if pretrain_dir.parent == cell else [cell / MEMORIZATION_FILE, own]


def read_memorization(files: list[Path], questions: str | Path) -> dict | None:
    """The first of `files` measured on `questions` (memorization.json records which), or None."""
    for path in files:
        if not path.is_file():
            continue
        try:
            measured = json.loads(path.read_text(encoding="utf-8"))
            float(measured["recall"]["continue"]["accuracy"])
            if questions_key(measured["questions"]) == questions_key(questions):
                return measured
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: unreadable ({exc})") from None
    return None


def data_overrides(data: Path | None, phase_config: str, replays: bool = False) -> list[str]:
    """--data DIR as config overrides: the corpus where the phase reads one (finetuning a pretrained
    export takes the vocabulary from the export, and reads the corpus only to replay its documents:
    `replays`), the question files where it finetunes, and for pretraining the finetuning split, the
    only questions `data.question_mix` may mix in."""
    if data is None:
        return []
    corpus = f"data.corpus={data / DATA_FILES['corpus']}"
    finetune = f"data.finetune={data / DATA_FILES['finetune']}"
    questions = [finetune, f"eval.questions={data / DATA_FILES['questions']}"]
    return {"pretrain": [corpus, finetune], "finetune": [corpus, *questions] if replays else questions,
            "finetune_scratch": [corpus, *questions]}[phase_config]


def load_phase(path: Path, data: Path | None, phase_config: str, rest: list[str]) -> tuple[RunConfig, list[str]]:
    """One run's config and its --set assignments: --data's files, then `rest`. A finetune of an export
    gets --data's corpus only where it replays documents (data.replay), so a plain finetune's config
    stays the one its run folder holds."""
    if phase_config == "finetune" and data is not None:
        sets = [*data_overrides(data, phase_config, replays=True), *rest]
        config = load_config([path], sets)
        if config.data.replay > 0:
            return config, sets
    sets = [*data_overrides(data, phase_config), *rest]
    return load_config([path], sets), sets


def phase_configs(settings: list[str]) -> list[str]:
    """The runs of one grid cell, in execution order: a finetune needs its pretrain before it."""
    return (["pretrain", "finetune"] if "pretrained" in settings else []) + \
        (["finetune_scratch"] if "scratch" in settings else [])


def phase_overrides(overrides: list[str], phase_config: str) -> list[str]:
    """The `--set` assignments that apply to one phase config: `key=value` applies to every phase,
    `PHASE:key=value` (e.g. `pretrain:train.epochs=90`) to that phase only, so a sweep can lengthen
    pretraining without turning a 5-epoch finetune into a 90-epoch one. An unknown PHASE is a
    ConfigError naming it."""
    selected = []
    for assignment in overrides:
        key = assignment.partition("=")[0]
        phase, sep, rest = key.partition(":")
        if not sep:
            selected.append(assignment)
            continue
        if phase not in PHASE_CONFIGS:
            raise ConfigError(f"--set {assignment}: unknown phase {phase!r} (expected one of {', '.join(PHASE_CONFIGS)}, "
                              "or no PHASE: for every phase)")
        if phase == phase_config:
            selected.append(assignment[len(phase) + 1:])
    return selected


def plan_runs(scale: Path, out: Path, variants: list[str], seeds: list[int], settings: list[str],
              data: Path | None, overrides: list[str], pretrained_from: Path | None = None) -> list[Run]:
    """Every run of the grid in execution order, each config loaded and validated (ConfigError otherwise).

    With `pretrained_from`, each cell's pretraining is the one in that sweep directory (same layout):
    its run keeps the directory, so its config is compared with what this sweep would run there, and
    the finetune starts from its export. Sweeps that differ only in finetuning keys then share one
    pretraining, which is most of the cost (experiments.sweep --pretrained-from)."""
    phases = phase_configs(settings)
    for phase_config in PHASE_CONFIGS:
        phase_overrides(overrides, phase_config)  # an unknown phase is an error even where no run would read it
    runs = []
    for variant in variants:
        for seed in seeds:
            for phase_config in phases:
                path = scale / f"{phase_config}.yaml"
                rest = [*phase_overrides(overrides, phase_config), f"model.variant={variant}", f"seed={seed}",
                        f"run_dir={phase_dir(out, variant, seed, phase_config, pretrained_from)}"]
                if phase_config == "finetune":
                    rest.append(f"init_from={phase_dir(out, variant, seed, 'pretrain', pretrained_from) / 'export'}")
                config, sets = load_phase(path, data, phase_config, rest)
                runs.append(Run(variant, seed, phase_config, (path,), tuple(sets), config))
    return runs


def check_inputs(runs: list[Run]) -> None:
    """Every question file of every run, against the vocabulary its cell's pretraining corpus fixes,
    before the first run starts: a character the corpus lacks would otherwise stop the sweep at the
    first finetuning, after the pretraining it makes useless (hours at SPEC's scale)."""
    vocabularies: dict[Path, Vocabulary] = {}
    corpus_of_cell = {(r.variant, r.seed): r.config.data.corpus for r in runs if r.phase_config == "pretrain"}
    for run in runs:
        corpus = run.config.data.corpus or corpus_of_cell.get((run.variant, run.seed))
        if corpus is None:
            continue  # finetuning an export made elsewhere: the phase checks its files itself
        try:
            if corpus not in vocabularies:
                vocabularies[corpus] = open_corpus(corpus)[1]
            check_question_files(run.config, vocabularies[corpus])
        except DataError as exc:
            raise ConfigError(f"{exc} (the vocabulary of {corpus}, which {run.name} would use); nothing was run") from None


def check_scale(scale: Path) -> None:
    for name in PHASE_CONFIGS:
        if not (scale / f"{name}.yaml").is_file():
            raise ConfigError(f"{scale}: no {name}.yaml (a sweep's scale directory holds "
                              "pretrain.yaml, finetune.yaml and finetune_scratch.yaml)")


def check_data(data: Path) -> None:
    for name in DATA_FILES.values():
        if not (data / name).is_file():
            raise ConfigError(f"--data {data}: no {name} (a data set in the real format has "
                              f"{', '.join(DATA_FILES.values())})")


def state_of(run: Run) -> str:
    """"new", "done" (a completed run of this very config) or "partial" (same config, to resume).

    A directory holding another config, or a run.json that cannot be read, is a ConfigError: the
    sweep cannot tell whether that run finished, so it stops before launching anything."""
    saved = run.run_dir / "config.yaml"
    if not saved.is_file():
        return "new"
    mine = yaml.safe_load(to_yaml(run.config))
    theirs = with_defaults(yaml.safe_load(saved.read_text(encoding="utf-8")))
    if theirs != mine:
        key = next(iter(config_differences(theirs, mine).values()))
        raise ConfigError(f"{run.run_dir}: holds a run with a different config ({key}); "
                          f"choose another --out or remove that directory")
    try:
        attempts = read_attempts(run.run_dir / RECORD_NAME)
    except DataError as exc:  # launcher.run_record.RunRecordError: "<path>: <why>"
        raise ConfigError(f"{exc}; the sweep cannot tell whether this run finished: "
                          "repair the file or remove the run's directory") from None
    done = any(a.get("completed") for a in attempts)
    if done and run.config.eval.questions is not None and not (run.run_dir / "accuracy.json").is_file():
        done = False
    return "done" if done else "partial"

