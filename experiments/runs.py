"""Reading a sweep back: each run directory's config, record of attempts, dev accuracy and loss curve.

A sweep directory holds sweep.json (written by experiments.sweep or slurm/sweep.sh) and one run
directory per (variant, seed, phase config), laid out as experiments.grid says (a sweep run with
--pretrained-from keeps its pretraining runs in the directory sweep.json names). Everything is read
and checked before anything is rendered, so a missing or unfinished run is one ReportError line
naming its file, never a half-written report.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from data.birthplaces import read_questions
from data.errors import DataError
from experiments.grid import (SETTING_PHASE, SETTINGS, memorization_files, phase_configs, phase_dir, questions_key,
                              read_memorization, variant_names)
from launcher.config import with_defaults
from launcher.evaluate import answered
from launcher.machine_share import SHARED_CORES
from launcher.run_record import RECORD_NAME, read_attempts

ATTEMPT_KEYS = ("seconds", "device", "started")  # what the report reads of each attempt
RATE_TAG = "train/tokens_per_second"


class ReportError(ValueError):
    """A sweep, run or preface that cannot be reported: one line naming the path and what is wrong."""


def lookup(tree: dict, key: str):
    """The value at a dotted key of a config tree, or None where there is no such key."""
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


@dataclass
class RunResult:
    """What the report needs of one run directory."""

    path: Path
    phase_config: str
    config: dict
    attempts: list[dict]
    loss: list[tuple[int, float]]
    rates: list[tuple[int, float]] = field(default_factory=list)  # train/tokens_per_second as logged
    accuracy: dict | None = None
    memorization: dict | None = None  # a pretraining's measurement on its sweep's questions (grid.memorization_files)

    def recall(self, form: str = "continue") -> float | None:
        """Percent of dev facts the pretrained model recalled from its own document; None if not measured."""
        if self.memorization is None:
            return None
        return 100 * self.memorization["recall"][form]["accuracy"]

    @property
    def tokens_per_second(self) -> float | None:
        """The median logged rate, the first window left out (it holds start-up); None if none was logged."""
        values = [v for _, v in self.rates[1:]] or [v for _, v in self.rates]
        return statistics.median(values) if values else None

    @property
    def seconds(self) -> float:
        """Wall time: a resumed run's attempts, summed."""
        return sum(a["seconds"] for a in self.attempts)

    @property
    def cpu_seconds(self) -> float | None:
        """CPU time of the job's own processes, attempts summed; None where an attempt did not record it."""
        values = [a.get("cpu_seconds") for a in self.attempts]
        return None if None in values else sum(values)

    @property
    def others_cores(self) -> float | None:
        """The most cores other processes used on average during an attempt; None where none recorded it."""
        values = [a["others_cores"] for a in self.attempts if a.get("others_cores") is not None]
        return max(values) if values else None

    @property
    def shared(self) -> bool:
        """Whether other processes took a share of the machine (launcher.machine_share) during an attempt."""
        return (self.others_cores or 0.0) > SHARED_CORES

    @property
    def device(self) -> str:
        return self.attempts[-1]["device"]

    @property
    def commit(self) -> str:
        return self.attempts[-1].get("commit") or "unknown"

    @property
    def date(self) -> str:
        return self.attempts[0]["started"][:10]

    @property
    def final_loss(self) -> float:
        return self.loss[-1][1]

    def setting(self, key: str):
        """A config value by dotted key, e.g. "model.n_embd"; None where the config has no such key."""
        return lookup(self.config, key)

    def correct(self) -> list[bool]:
        """Per question of eval.questions, whether the run's prediction is its answer (launcher.evaluate's
        rule), read back from its predictions file."""
        questions_path = self.setting("eval.questions")
        predictions_path = self.path / (self.setting("eval.predictions") or "predictions.txt")
        try:
            questions = read_questions(questions_path, require_answers=True)
        except DataError as exc:
            raise ReportError(str(exc)) from None
        # bytes, not text mode, which would read a "\r" inside a prediction as a line end
        predictions = predictions_path.read_bytes().decode("utf-8").split("\n")[:-1]
        correct = answered(predictions, questions)
        if len(predictions) != len(questions) or sum(correct) != self.accuracy["correct"]:
            raise ReportError(f"{predictions_path}: {sum(correct)} of {len(predictions)} predictions answer the "
                              f"{len(questions)} questions of {questions_path}, where accuracy.json counted "
                              f"{self.accuracy['correct']} of {self.accuracy['total']}")
        return correct


@dataclass
class Sweep:
    path: Path
    manifest: dict
    runs: dict[tuple[str, int, str], RunResult] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The sweep's name in the report: its directory name (figures and placeholders use it)."""
        return self.path.name

    @property
    def variants(self) -> list[str]:
        """The sweep's variants in registry order; one no longer registered comes last, still reported."""
        registered = variant_names()
        mine = self.manifest["variants"]
        return [v for v in registered if v in mine] + [v for v in mine if v not in registered]

    @property
    def seeds(self) -> list[int]:
        return sorted(self.manifest["seeds"])

    @property
    def settings(self) -> list[str]:
        return [s for s in SETTINGS if s in self.manifest["settings"]]

    def accuracies(self, variant: str, setting: str) -> list[float]:
        """Dev accuracy in percent, one per seed, in seed order."""
        return [100 * self.runs[(variant, seed, SETTING_PHASE[setting])].accuracy["accuracy"] for seed in self.seeds]

    def gains(self, variant: str) -> list[float]:
        """Pretrained minus no-pretraining accuracy per seed (seeds paired by index), in points."""
        return [a - b for a, b in zip(self.accuracies(variant, "pretrained"), self.accuracies(variant, "scratch"))]

    def gain(self, variant: str) -> float:
        """Mean accuracy after pretraining minus mean accuracy without it, in points."""
        pretrained, scratch = self.accuracies(variant, "pretrained"), self.accuracies(variant, "scratch")
        return statistics.mean(pretrained) - statistics.mean(scratch)

    def pretrain_run(self) -> RunResult:
        """The first pretraining run (seed order): its config is the sweep's pretraining recipe."""
        return self.phase_run("pretrain")

    def phase_run(self, phase_config: str) -> RunResult:
        """The first run of a phase config (variant, then seed order): its config is that phase's recipe."""
        return next(self.runs[(v, s, phase_config)] for v in self.variants for s in self.seeds)

    def finetuned_run(self) -> RunResult:
        """Any run that answered the dev questions: they all read the same file."""
        return next(r for r in self.runs.values() if r.accuracy is not None)

    @property
    def answers(self) -> str:
        """The questions file its accuracies are on (eval.questions): only sweeps on the same file compare."""
        return str(self.finetuned_run().setting("eval.questions"))

    @property
    def answers_key(self) -> str:
        return questions_key(self.answers)

    def paired_with(self, variant: str, other: "Sweep", other_variant: str) -> bool:
        """Whether this sweep's variant and the other's finetuned the same pretraining run seed by seed
        and answered the same questions (experiments.decisions.paired_gain applies)."""
        if self.seeds != other.seeds or self.answers_key != other.answers_key:
            return False
        return all(self.runs[(variant, seed, "pretrain")].path.resolve()
                   == other.runs[(other_variant, seed, "pretrain")].path.resolve() for seed in self.seeds)

    def correct(self, variant: str) -> list[list[bool]]:
        """Per seed, per question, whether the pretrained model's finetune answered it."""
        return [self.runs[(variant, seed, "finetune")].correct() for seed in self.seeds]


def read_loss(run_dir: Path) -> list[tuple[int, float]]:
    """train/loss from the run's TensorBoard event files; a step logged twice (a resumed run) keeps its last value."""
    return read_scalars(run_dir)["train/loss"]


def read_scalars(run_dir: Path, optional: tuple[str, ...] = ()) -> dict[str, list[tuple[int, float]]]:
    """train/loss and each `optional` tag present, as sorted (step, value) lists, from the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = run_dir / "tensorboard"
    if not events.is_dir():
        raise ReportError(f"{run_dir}: no tensorboard/ directory")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
    accumulator.Reload()
    if "train/loss" not in accumulator.Tags()["scalars"]:
        raise ReportError(f"{events}: no train/loss scalars")
    tags = ["train/loss", *(t for t in optional if t in accumulator.Tags()["scalars"])]
    return {tag: sorted({event.step: event.value for event in accumulator.Scalars(tag)}.items()) for tag in tags}


def read_run_attempts(run_dir: Path) -> list[dict]:
    """The run's completed record of attempts, each with what the report reads, or a ReportError naming run.json."""
    path = run_dir / RECORD_NAME
    try:
        attempts = read_attempts(path)
    except DataError as exc:  # launcher.run_record.RunRecordError: "<path>: <why>"
        raise ReportError(f"{exc}; the report needs each run's record of attempts (wall time, device)") from None
    if not any(a.get("completed") for a in attempts):
        raise ReportError(f"{run_dir}: not completed ({RECORD_NAME} records no completed attempt); "
                          "finish the sweep first")
    for number, attempt in enumerate(attempts, 1):
        missing = [key for key in ATTEMPT_KEYS if key not in attempt]
        if missing:
            raise ReportError(f"{path}: attempt {number} has no {', '.join(missing)}")
    return attempts


def read_accuracy(run_dir: Path, predictions_name: str) -> dict:
    path = run_dir / "accuracy.json"
    if not path.is_file():
        raise ReportError(f"{path}: missing (the run wrote no dev accuracy; were eval.questions answered?)")
    try:
        accuracy = json.loads(path.read_text(encoding="utf-8"))
        float(accuracy["accuracy"]), int(accuracy["correct"]), int(accuracy["total"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{path}: unreadable ({exc})") from None
    predictions = run_dir / predictions_name
    if not predictions.is_file():
        raise ReportError(f"{predictions}: missing (the run's eval.predictions)")
    return accuracy


def read_run(run_dir: Path, phase_config: str, needs_accuracy: bool) -> RunResult:
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ReportError(f"{run_dir}: no config.yaml (the run never started)")
    attempts = read_run_attempts(run_dir)
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReportError(f"{config_path}: unreadable ({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict):
        raise ReportError(f"{config_path}: not a run's resolved config (a mapping of keys to values)")
    config = with_defaults(config)  # a key added since the run reads as its default, as the run did
    scalars = read_scalars(run_dir, optional=(RATE_TAG,))
    result = RunResult(run_dir, phase_config, config, attempts, scalars["train/loss"], scalars.get(RATE_TAG, []))
    if needs_accuracy:
        result.accuracy = read_accuracy(run_dir, result.setting("eval.predictions") or "predictions.txt")
    return result


def check_manifest(path: Path, manifest: dict) -> None:
    """The grid sweep.json records: non-empty lists of names, seeds and known settings."""
    kinds = {"variants": str, "seeds": int, "settings": str}
    for key, kind in kinds.items():
        value = manifest[key]
        if not isinstance(value, list) or not value or not all(type(item) is kind for item in value):
            raise ReportError(f"{path}: {key}: expected a non-empty list of {kind.__name__} values, got {value!r}")
    unknown = [s for s in manifest["settings"] if s not in SETTINGS]
    if unknown:
        raise ReportError(f"{path}: settings: unknown {', '.join(unknown)} (known: {', '.join(SETTINGS)})")


def read_sweep(path: Path) -> Sweep:
    manifest_path = path / "sweep.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for key in ("variants", "seeds", "settings", "command"):
            manifest[key]
    except FileNotFoundError:
        raise ReportError(f"{path}: no sweep.json (not a sweep directory; "
                          "python -m experiments.sweep writes one)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{manifest_path}: unreadable ({exc})") from None
    check_manifest(manifest_path, manifest)
    sweep = Sweep(path, manifest)
    # a sweep run with --pretrained-from finetuned another sweep's pretraining runs: they are its own
    pretrained_from = Path(manifest["pretrained_from"]) if manifest.get("pretrained_from") else None
    for variant in sweep.variants:
        for seed in sweep.seeds:
            for phase_config in phase_configs(sweep.settings):
                run_dir = phase_dir(path, variant, seed, phase_config, pretrained_from)
                sweep.runs[(variant, seed, phase_config)] = read_run(run_dir, phase_config, phase_config != "pretrain")
            if "pretrained" in sweep.settings:  # what the pretraining stored, measured on this sweep's questions
                pretrain, finetune = (sweep.runs[(variant, seed, p)] for p in ("pretrain", "finetune"))
                files = memorization_files(finetune.path.parent, pretrain.path)
                try:
                    pretrain.memorization = read_memorization(files, finetune.setting("eval.questions"))
                except DataError as exc:
                    raise ReportError(str(exc)) from None
    return sweep
