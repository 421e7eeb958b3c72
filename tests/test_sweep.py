"""The sweep command and the report: a real 2-variant x 2-seed grid on 2 processes, read back.

The grid (conftest.py) runs once per session (tiny model, a few steps per phase); the tests then check what a
user relies on: every run where the layout says, skipped when done, refused when it would mix
configs, and a report whose numbers are the runs' own, with loss curves that are real PNGs.
"""

from __future__ import annotations

import json
import shutil
import statistics
import struct
from collections import Counter
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import GRID, ROOT, TINY_SWEEP, run_experiment
from launch import losses

PHASES = ("pretrain", "finetune", "finetune_scratch")


def sweep(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return run_experiment("sweep", *args, cwd=cwd)


def report(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return run_experiment("report", *args, cwd=cwd)


def attempts(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "run.json").read_text())["attempts"]


def test_sweep_runs_every_cell_into_its_directory(grid, world):
    manifest = json.loads((grid / "sweep.json").read_text())
    assert manifest["variants"] == ["vanilla", "rope"] and manifest["seeds"] == [0, 1]
    assert manifest["command"].startswith("python -m experiments.sweep configs/demo")
    for variant in ("vanilla", "rope"):
        for seed in (0, 1):
            cell = grid / variant / f"seed{seed}"
            for phase in PHASES:
                config = yaml.safe_load((cell / phase / "config.yaml").read_text())
                assert (config["model"]["variant"], config["seed"]) == (variant, seed)
                assert config["train"]["max_steps"] == 3 and config["model"]["n_embd"] == 32
                assert config["eval"]["samples"] == (3 if phase == "finetune_scratch" else 8)
                [attempt] = attempts(cell / phase)
                assert attempt["completed"] and attempt["world_size"] == 2 and attempt["seconds"] > 0
                assert attempt["device"].startswith("2 x CPU process")
                assert max(losses(cell / phase)) == 3
            assert yaml.safe_load((cell / "finetune" / "config.yaml").read_text())["init_from"] == str(cell / "pretrain" / "export")
            assert yaml.safe_load((cell / "pretrain" / "config.yaml").read_text())["data"]["corpus"] == str(world / "wiki.txt")
            for phase in ("finetune", "finetune_scratch"):
                assert json.loads((cell / phase / "accuracy.json").read_text())["total"] == 16
                assert len((cell / phase / "predictions.txt").read_text().splitlines()) == 16
            # what pretraining stored, measured on the same dev people (every one has a biography in this world)
            stored = json.loads((cell / "pretrain" / "memorization.json").read_text())
            assert stored["asked"] == 16 and stored["recall"]["continue"]["total"] == 16 - stored["skipped"] > 8
    assert len(list((grid / "logs").glob("*.log"))) == 12


def test_sweep_again_skips_completed_runs(grid, world):
    result = sweep("configs/demo", "--data", str(world), "--out", str(grid), *GRID, *TINY_SWEEP)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("done earlier, skipped") == 12
    assert len(attempts(grid / "rope" / "seed1" / "pretrain")) == 1


def test_sweep_refuses_a_directory_holding_another_config(grid, world):
    result = sweep("configs/demo", "--data", str(world), "--out", str(grid), *GRID,
                   "--set", "train.max_steps=4", "model.n_embd=32", "model.n_head=2", "train.log_every=1")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {grid / 'vanilla' / 'seed0' / 'pretrain'}: holds a run with a different "
                                     "config (train.max_steps: 3 there, 4 now); choose another --out or remove that directory")
    assert len(attempts(grid / "vanilla" / "seed0" / "pretrain")) == 1


@pytest.mark.parametrize("args, message", [
    (["--set", "train.warmup=3"], "configs/demo/pretrain.yaml: train.warmup: unknown key"),
    (["--data", "configs"], "--data configs: no wiki.txt (a data set in the real format has wiki.txt, birth_places_train.tsv, birth_dev.tsv)"),
    (["--set", "model.n_head=3"], "configs/demo/pretrain.yaml: model.n_embd: 64 is not divisible by model.n_head (3)"),
    (["--set", "pretraining:train.epochs=90"], "--set pretraining:train.epochs=90: unknown phase 'pretraining' (expected "
                                                "one of pretrain, finetune, finetune_scratch, or no PHASE: for every phase)"),
    (["--set", "finetune:train.epochs=-1"], "configs/demo/finetune.yaml: train.epochs: Input should be greater than 0 (got -1)"),
])
def test_sweep_bad_input_is_one_line_and_runs_nothing(tmp_path, world, args, message):
    data = [] if "--data" in args else ["--data", str(world)]
    result = sweep("configs/demo", *data, "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "out").exists()


def test_sweep_applies_a_phase_override_to_that_phase_only(tmp_path, world):
    result = sweep("configs/demo", "--data", str(world), "--out", str(tmp_path / "out"), "--variants", "vanilla",
                   "--seeds", "0", "--plan", "--set", "train.log_every=7", "pretrain:train.epochs=90",
                   "finetune:train.learning_rate=1e-4", "finetune_scratch:train.epochs=12")
    assert result.returncode == 0, result.stderr
    sets = {line.split("\t")[2]: line.split("\t")[line.split("\t").index("--set") + 1:]
            for line in result.stdout.splitlines()}
    assert set(sets) == set(PHASES)
    assert all("train.log_every=7" in s for s in sets.values())
    assert "train.epochs=90" in sets["pretrain"] and "train.epochs=12" in sets["finetune_scratch"]
    assert not any(s.startswith("train.epochs") for s in sets["finetune"])
    assert "train.learning_rate=1e-4" in sets["finetune"]
    assert not any("learning_rate" in s for s in sets["pretrain"] + sets["finetune_scratch"])


def test_sweep_stops_at_a_failed_run_and_names_its_log(tmp_path, world):
    out = tmp_path / "out"
    result = sweep("configs/demo", "--data", str(world), "--out", str(out), "--variants", "vanilla", "--seeds", "0",
                   "--procs", "2", "--set", "train.micro_batch_size=7")  # 32 is not 2 ranks x 7 x k
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    log = out / "logs" / "vanilla-seed0-pretrain.log"
    assert line.startswith("error: [1/3] vanilla seed 0 pretrain failed (exit 1) after ")
    assert line.endswith(": train.global_batch_size: 32 is not divisible by world size x train.micro_batch_size "
                         f"(2 x 7) (log: {log})")
    assert not (out / "vanilla" / "seed0" / "finetune").exists()  # nothing after the failure ran


def table_row(markdown: str, start: str) -> list[str]:
    [line] = [line for line in markdown.splitlines() if line.startswith(start)]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_tables_hold_the_runs_numbers(grid, world, tmp_path):
    out = tmp_path / "docs" / "results.md"
    result = report(str(grid), "--out", str(out), "--predictions", str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    markdown = out.read_text()
    assert "## tiny grid" in markdown
    assert "reference results listed in `docs/experiment.md`" in markdown and "SPEC.md" not in markdown
    assert markdown.splitlines()[2].startswith(f"Generated by `python -m experiments.report {grid} --out {out} ")
    assert "**Reduced relative to SPEC**" in markdown and "`model.n_embd` 32 (SPEC: 256)" in markdown
    assert "dev set of 16 questions (SPEC's real dev set: 500)" in markdown
    for variant in ("vanilla", "rope"):
        for setting, phase in (("no pretraining", "finetune_scratch"), ("pretrain, then finetune", "finetune")):
            values = [100 * json.loads((grid / variant / f"seed{s}" / phase / "accuracy.json").read_text())["accuracy"]
                      for s in (0, 1)]
            row = table_row(markdown, f"| {variant} | {setting} |")
            assert row[2:4] == [f"{v:.1f}" for v in values]
            assert row[4] == f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"
    assert table_row(markdown, "| vanilla | pretrain, then finetune |")[5] == "21.6–30.6 (4 reports)"
    assert table_row(markdown, "| constant \"London\" |")[-2:] == ["0.0", "5.0"]
    answers = [line.split("\t")[1] for line in (world / "birth_dev.tsv").read_text().splitlines()]
    top, count = Counter(answers).most_common(1)[0]  # ties: the first in file order, as the report takes
    assert table_row(markdown, f"| most common dev answer ({top}) |")[-2] == f"{100 * count / 16:.1f}"
    run_rows = [line for line in markdown.splitlines() if line.startswith("| vanilla seed") or line.startswith("| rope seed")]
    assert len(run_rows) == 12 and all("2 x CPU process" in row for row in run_rows)
    from experiments.runs import read_scalars  # tokens/s: the median logged rate, start-up window left out

    row = table_row(markdown, "| tiny grid (vanilla) |")  # the comparison: one row per sweep and variant
    pretrained = [100 * json.loads((grid / "vanilla" / f"seed{s}" / "finetune" / "accuracy.json").read_text())["accuracy"]
                  for s in (0, 1)]
    recalls = [100 * json.loads((grid / "vanilla" / f"seed{s}" / "pretrain" / "memorization.json").read_text())
               ["recall"]["continue"]["accuracy"] for s in (0, 1)]
    assert row[3:5] == ["2", f"{statistics.mean(pretrained):.1f} ± {statistics.stdev(pretrained):.1f}"]
    assert row[8] == f"{statistics.mean(recalls):.1f} ± {statistics.stdev(recalls):.1f}"
    rates = [v for _, v in read_scalars(grid / "rope" / "seed1" / "pretrain", ("train/tokens_per_second",))
             ["train/tokens_per_second"]]
    row = table_row(markdown, "| rope seed 1 pretrain |")
    assert row[4] == f"{statistics.median(rates[1:] or rates):,.0f}" and float(row[4].replace(",", "")) > 0
    for name in ("tiny-pretrain.png", "tiny-finetune.png"):
        png = (tmp_path / "docs" / "figures" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 400 and height > 300
        assert f"](figures/{name})" in markdown
    copied = tmp_path / "results" / "tiny" / "rope-seed1-finetune-dev-predictions.txt"
    assert copied.read_text() == (grid / "rope" / "seed1" / "finetune" / "predictions.txt").read_text()


def test_report_compares_sweeps_by_the_recipe_keys_that_differ(grid, world, tmp_path):
    """A second sweep that pretrains with another recipe: the comparison names exactly the keys that
    differ from the first sweep's pretraining, with this sweep's values."""
    text = tmp_path / "text-mix"
    result = run_experiment("sweep", "configs/demo", "--data", str(world), "--out", str(text), "--variants", "vanilla",
                            "--seeds", "0", "--settings", "pretrained", "--procs", "1", "--label", "text mix",
                            *TINY_SWEEP, "data.objective=text", "data.question_mix=0.5")
    assert result.returncode == 0, result.stderr
    assert "pretraining recalls" in result.stdout
    out = tmp_path / "results.md"
    result = report(str(grid), str(text), "--out", str(out))
    assert result.returncode == 0, result.stderr
    markdown = out.read_text()
    row = table_row(markdown, "| text mix (vanilla) |")
    assert row[1] == "`data.question_mix` 0.5, `data.objective` text"
    assert row[3] == "1" and row[5] == row[6] == "—"  # one seed, no no-pretraining setting
    assert table_row(markdown, "| tiny grid (vanilla) |")[1] == "`data.question_mix` 0, `data.objective` span_corruption"


def test_sweep_finetunes_another_sweeps_pretraining(grid, world, tmp_path):
    """--pretrained-from: a finetuning knob costs a finetune, not a pretraining. The other sweep's runs
    are used as they are (not run, not copied) and the report counts them as this sweep's pretraining."""
    out = tmp_path / "ft-lr"
    result = sweep("configs/demo", "--data", str(world), "--out", str(out), "--variants", "rope", "--seeds", "1",
                   "--settings", "pretrained", "--procs", "1", "--label", "finetune lr", "--pretrained-from", str(grid),
                   *TINY_SWEEP, "finetune:train.learning_rate=1e-4")
    assert result.returncode == 0, result.stderr
    assert "[1/2] rope seed 1 pretrain: done earlier, skipped" in result.stdout
    source = grid / "rope" / "seed1" / "pretrain"
    assert not (out / "rope" / "seed1" / "pretrain").exists() and len(attempts(source)) == 1
    finetune = yaml.safe_load((out / "rope" / "seed1" / "finetune" / "config.yaml").read_text())
    assert finetune["init_from"] == str(source / "export") and finetune["train"]["learning_rate"] == 1e-4
    assert json.loads((out / "sweep.json").read_text())["pretrained_from"] == str(grid)
    markdown_path = tmp_path / "results.md"
    result = report(str(grid), str(out), "--out", str(markdown_path))
    assert result.returncode == 0, result.stderr
    markdown = markdown_path.read_text()
    assert f"(the pretraining runs are `{grid}`'s, finetuned here: --pretrained-from)" in markdown
    row = table_row(markdown, "| finetune lr (rope) |")
    assert row[1] == "`finetune:train.learning_rate` 0.0001"  # the one recipe key that differs
    pipeline = attempts(source)[0]["cpu_seconds"] + attempts(out / "rope" / "seed1" / "finetune")[0]["cpu_seconds"]
    assert row[-3] == duration(pipeline)


def test_a_borrowed_pretraining_is_measured_on_the_borrowing_sweeps_questions(grid, world, tmp_path):
    """Borrowed for other questions (a dev sweep finetuning a selection sweep's pretraining, whose
    label-free pretraining read the same wiki.txt): what it stored is measured on this sweep's
    questions into this sweep's cell; the lending run's measurement stays as it was."""
    data = tmp_path / "other-dev"
    shutil.copytree(world, data)
    lines = (world / "birth_dev.tsv").read_text().splitlines(keepends=True)
    (data / "birth_dev.tsv").write_text("".join(lines[:8]))
    lent = grid / "rope" / "seed1" / "pretrain" / "memorization.json"
    before = lent.read_bytes()
    out = tmp_path / "dev"
    result = sweep("configs/demo", "--data", str(data), "--out", str(out), "--variants", "rope", "--seeds", "1",
                   "--settings", "pretrained", "--procs", "1", "--label", "other dev", "--pretrained-from", str(grid),
                   *TINY_SWEEP, f"pretrain:data.corpus={world / 'wiki.txt'}",
                   f"pretrain:data.finetune={world / 'birth_places_train.tsv'}")
    assert result.returncode == 0, result.stderr
    assert lent.read_bytes() == before
    mine = json.loads((out / "rope" / "seed1" / "memorization.json").read_text())
    assert mine["questions"] == str(data / "birth_dev.tsv") and mine["asked"] == 8
    markdown_path = tmp_path / "results.md"
    result = report(str(grid), str(out), "--out", str(markdown_path))
    assert result.returncode == 0, result.stderr
    markdown = markdown_path.read_text()
    recall = 100 * mine["recall"]["continue"]["accuracy"]
    assert table_row(markdown, "| other dev (rope) |")[8] == f"{recall:.1f}"  # one seed: its own measurement
    assert table_row(markdown, "| other dev (rope) |")[-2:] == ["—", "—"]  # other answers: its own reference


@pytest.mark.parametrize("change, message", [
    ("pretrain:train.learning_rate=1e-4", "holds a run with a different config (train.learning_rate: "),
    ("--seeds=7", "holds no completed pretraining (new); run that sweep first"),
])
def test_sweep_refuses_pretraining_it_cannot_borrow(grid, world, tmp_path, change, message):
    seeds = [change] if change.startswith("--") else ["--seeds", "0"]
    sets = [] if change.startswith("--") else [change]
    result = sweep("configs/demo", "--data", str(world), "--out", str(tmp_path / "out"), "--variants", "vanilla",
                   *seeds, "--settings", "pretrained", "--pretrained-from", str(grid), *TINY_SWEEP, *sets)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert not (tmp_path / "out").exists() and not (grid / "vanilla" / "seed7").exists()


def test_report_marks_a_run_whose_machine_was_shared_and_shows_cpu_time(grid, tmp_path):
    """run.json's others_cores decides the mark (launcher.machine_share); the CPU time is the run's own."""
    copied = tmp_path / "tiny"
    shutil.copytree(grid, copied)
    record = copied / "rope" / "seed0" / "pretrain" / "run.json"
    saved = json.loads(record.read_text())
    saved["attempts"][0]["others_cores"] = 1.0  # as if a second run had shared the two cores
    record.write_text(json.dumps(saved))
    out = tmp_path / "results.md"
    result = report(str(copied), "--out", str(out))
    assert result.returncode == 0, result.stderr
    markdown = out.read_text()
    for variant in ("vanilla", "rope"):
        for seed in (0, 1):
            for phase in PHASES:
                [attempt] = attempts(copied / variant / f"seed{seed}" / phase)
                row = table_row(markdown, f"| {variant} seed {seed} {phase} |")
                assert row[2].endswith(" †") == (attempt["others_cores"] > 0.2)
                assert attempt["cpu_seconds"] > 0 and row[8] == duration(attempt["cpu_seconds"])
                assert row[9] == f"{attempt['others_cores']:.2f}"
    assert table_row(markdown, "| rope seed 0 pretrain |")[2].endswith(" †")
    assert "† the machine was shared: other processes used more than 0.2 cores on average" in markdown
    assert table_row(markdown, "| tiny grid (rope) |")[9].endswith(" †")  # the comparison's pretraining wall time


def test_report_draws_a_curve_for_sweeps_that_differ_only_in_budget(grid, world, tmp_path):
    """A second sweep with a longer pretraining (train.max_steps 5 against 3) is the grid's next point:
    the Curves table holds each point's mean accuracy ± SE and CPU time; the comparison decides with 2 SE."""
    from experiments.decisions import gain, standard_error

    longer = tmp_path / "longer"
    result = run_experiment("sweep", "configs/demo", "--data", str(world), "--out", str(longer), "--variants", "vanilla",
                            "--seeds", "0", "1", "--settings", "pretrained", "--procs", "1", "--label", "longer",
                            *TINY_SWEEP, "pretrain:train.max_steps=5")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "results.md"
    result = report(str(grid), str(longer), "--out", str(out))
    assert result.returncode == 0, result.stderr
    markdown = out.read_text()
    assert "## Curves" in markdown and "](figures/curves.png)" in markdown
    png = (tmp_path / "figures" / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from experiments.curves import curves, legend_names
    from experiments.runs import read_sweep

    found = curves([read_sweep(grid), read_sweep(longer)])
    assert list(found) == ["vanilla"] and legend_names(found) == ["vanilla"]  # the budget is the x axis, not a name

    def accuracies(sweep: Path) -> list[float]:
        return [100 * json.loads((sweep / "vanilla" / f"seed{s}" / "finetune" / "accuracy.json").read_text())["accuracy"]
                for s in (0, 1)]

    def cpu(sweep: Path) -> float:
        return statistics.mean(sum(a["cpu_seconds"] for p in ("pretrain", "finetune")
                                   for a in attempts(sweep / "vanilla" / f"seed{s}" / p)) for s in (0, 1))

    curves = markdown.split("## Curves")[1].split("\n## ")[0]
    rows = [line for line in curves.splitlines() if line.startswith("| vanilla |")]
    assert [r.split("|")[2].strip() for r in rows] == ["tiny", "longer"]  # budget order: 3 steps, then 5
    for row, sweep in zip(rows, (grid, longer)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        values = accuracies(sweep)
        assert cells[5] == f"{statistics.mean(values):.1f} ± {standard_error(values, 16):.1f}"
        assert cells[6] == duration(cpu(sweep))
    row = table_row(markdown, "| longer (vanilla) |")
    assert row[1] == "`train.max_steps` 5"
    assert row[-2] == gain(accuracies(longer), accuracies(grid), 16).describe()
    assert row[-1] == "—"  # its own pretraining runs: no pairing
    assert table_row(markdown, "| tiny grid (vanilla) |")[-2:] == ["—", "—"]  # the first row is the reference of every other
    rope = [100 * json.loads((grid / "rope" / f"seed{s}" / "finetune" / "accuracy.json").read_text())["accuracy"]
            for s in (0, 1)]
    assert table_row(markdown, "| tiny grid (rope) |")[-2:] == [gain(rope, accuracies(grid), 16).describe(), "—"]


def test_report_compares_and_joins_only_sweeps_scored_on_the_same_answers(grid, world, tmp_path):
    """The grid again, as if scored on another questions file with a longer pretraining (its configs
    rewritten): data paths are no recipe key, so only the answers file keeps the two apart. It is its
    own reference in the comparison and no point of the grid's curve."""
    other = tmp_path / "other"
    shutil.copytree(grid, other)
    answers = tmp_path / "other_dev.tsv"
    shutil.copyfile(world / "birth_dev.tsv", answers)
    for config_path in other.glob("*/seed*/*/config.yaml"):
        config = yaml.safe_load(config_path.read_text())
        if config_path.parent.name == "pretrain":
            config["train"]["max_steps"] = 5
        else:
            config["eval"]["questions"] = str(answers)
        config_path.write_text(yaml.safe_dump(config))
    manifest = json.loads((other / "sweep.json").read_text())
    (other / "sweep.json").write_text(json.dumps({**manifest, "label": "other answers"}))
    out = tmp_path / "results.md"
    result = report(str(grid), str(other), "--out", str(out))
    assert result.returncode == 0, result.stderr
    markdown = out.read_text()
    assert table_row(markdown, "| other answers (vanilla) |")[-2] == "—"  # the first row on its answers
    # rope against the vanilla row on its own answers: the same runs, so the grid's own verdict
    assert table_row(markdown, "| other answers (rope) |")[-2] == table_row(markdown, "| tiny grid (rope) |")[-2] != "—"
    assert "## Curves" not in markdown
    from experiments.curves import curves
    from experiments.runs import read_sweep

    found = curves([read_sweep(grid), read_sweep(other)])
    assert found == {}  # one budget per answers file: no curve


def test_a_gain_counts_only_beyond_two_standard_errors():
    from experiments.decisions import gain, standard_error

    assert standard_error([10.0, 10.0], 400) == pytest.approx(100 * (0.1 * 0.9 / 800) ** 0.5)  # binomial floor
    assert standard_error([4.0, 12.0], 400) == pytest.approx(statistics.stdev([4.0, 12.0]) / 2 ** 0.5)  # the seeds'
    assert gain([9.0, 9.5], [5.0, 5.5], 400).describe() == "+4.0 ± 1.3 (better)"
    assert gain([6.0, 6.5], [5.0, 5.5], 400).describe() == "+1.0 ± 1.2 (no decision)"
    assert gain([1.0, 1.5], [5.0, 5.5], 400).describe() == "-4.0 ± 0.9 (worse)"


def test_a_paired_gain_cancels_what_the_seeds_share():
    """Seed by seed on the same 100 questions: on seed s the reference answers questions 30s to 30s+14
    and the candidate those and five more. Independent means cannot tell 20% from 15% on 300 answers
    each; paired, every seed gains 5 points, on 15 questions a third of the seeds each."""
    from experiments.decisions import gain, paired_gain

    candidate = [[30 * s <= q < 30 * s + 20 for q in range(100)] for s in range(3)]
    reference = [[30 * s <= q < 30 * s + 15 for q in range(100)] for s in range(3)]
    assert gain([20.0] * 3, [15.0] * 3, 100).describe() == "+5.0 ± 3.1 (no decision)"
    # the questions' error: 15 questions at +33.3 points and 85 at 0, stdev 12.0 over sqrt(100)
    assert paired_gain(candidate, reference).describe() == "+5.0 ± 1.2 (better)"
    # the same 5 questions won on every seed are 5 questions, not 15: +100 on 5 of 100, stdev 21.9
    same = [[q < 20 for q in range(100)]] * 3
    assert paired_gain(same, [[q < 15 for q in range(100)]] * 3).describe() == "+5.0 ± 2.2 (better)"
    # seeds that disagree: their differences' spread is the error where it is the larger
    spread = [[30 * s <= q < 30 * s + n for q in range(100)] for s, n in enumerate((30, 10, 20))]
    assert paired_gain(spread, reference).describe() == "+5.0 ± 5.8 (no decision)"  # stdev(15, -5, 5) / sqrt(3)
    with pytest.raises(ValueError, match="paired seeds: 3 against 2"):
        paired_gain(candidate, reference[:2])
    with pytest.raises(ValueError, match="paired answers: 99 against 100"):
        paired_gain([candidate[0][:99], *candidate[1:]], reference)


def test_report_pairs_a_finetune_of_the_first_rows_own_pretraining_by_seed(grid, world, tmp_path):
    """A finetuning knob on the first row's own pretraining runs (--pretrained-from) is also compared
    seed by seed on the same questions (experiments.decisions.paired_gain), beside the rule's verdict;
    a row of another variant pretrained elsewhere is not, and a preface asking it to be is one error."""
    from data.birthplaces import read_questions
    from experiments.decisions import paired_gain

    out = tmp_path / "ft-lr"
    result = sweep("configs/demo", "--data", str(world), "--out", str(out), "--variants", "vanilla", "rope",
                   "--seeds", "0", "1", "--settings", "pretrained", "--procs", "1", "--label", "finetune lr",
                   "--pretrained-from", str(grid), *TINY_SWEEP, "finetune:train.learning_rate=1e-3")
    assert result.returncode == 0, result.stderr
    answers = [q.answer for q in read_questions(world / "birth_dev.tsv", require_answers=True)]
    for seed, known in ((0, 3), (1, 5)):  # tiny runs answer little: the first few questions answered, as if learnt
        run_dir = out / "vanilla" / f"seed{seed}" / "finetune"
        predictions = answers[:known] + (run_dir / "predictions.txt").read_text().split("\n")[known:-1]
        (run_dir / "predictions.txt").write_text("".join(p + "\n" for p in predictions))
        accuracy = sum(p == a for p, a in zip(predictions, answers))
        (run_dir / "accuracy.json").write_text(json.dumps({"correct": accuracy, "total": len(answers),
                                                           "accuracy": accuracy / len(answers)}))

    def correct(sweep_dir: Path, variant: str) -> list[list[bool]]:
        return [[p == a for p, a in zip((sweep_dir / variant / f"seed{s}" / "finetune" / "predictions.txt")
                                        .read_text().split("\n")[:-1], answers, strict=True)] for s in (0, 1)]

    expected = paired_gain(correct(out, "vanilla"), correct(grid, "vanilla")).describe()
    assert expected != "+0.0 ± 0.0 (no decision)"
    preface = tmp_path / "preface.md"
    preface.write_text("Paired: {{compare_paired sweep=ft-lr,tiny variant=vanilla}}.\n")
    markdown_path = tmp_path / "results.md"
    result = report(str(grid), str(out), "--out", str(markdown_path), "--preface", str(preface))
    assert result.returncode == 0, result.stderr
    markdown = markdown_path.read_text()
    assert table_row(markdown, "| finetune lr (vanilla) |")[-1] == expected
    assert table_row(markdown, "| finetune lr (rope) |")[-1] == "—"  # rope's pretraining is not the first row's
    assert f"Paired: {expected}." in markdown
    preface.write_text("\n{{compare_paired sweep=ft-lr,tiny variant=rope,vanilla}}\n")
    result = report(str(grid), str(out), "--out", str(tmp_path / "again.md"), "--preface", str(preface))
    assert result.returncode == 1 and not (tmp_path / "again.md").exists()
    assert result.stderr.strip() == (f"error: {preface}:2: {{{{compare_paired sweep=ft-lr,tiny variant=rope,vanilla}}}}: "
                                     "sweeps ft-lr and tiny are not paired: they did not finetune the same pretraining "
                                     "runs for the same seeds")
    # predictions that do not add up to the run's own score are one error, not a verdict
    accuracy_path = out / "vanilla" / "seed1" / "finetune" / "accuracy.json"
    accuracy = json.loads(accuracy_path.read_text())
    accuracy_path.write_text(json.dumps({**accuracy, "correct": accuracy["correct"] + 1}))
    result = report(str(grid), str(out), "--out", str(tmp_path / "again.md"))
    assert result.returncode == 1 and not (tmp_path / "again.md").exists()
    predictions = out / "vanilla" / "seed1" / "finetune" / "predictions.txt"
    assert result.stderr.strip().startswith(f"error: {predictions}: ") and result.stderr.strip().endswith(
        f"where accuracy.json counted {accuracy['correct'] + 1} of {accuracy['total']}")


def test_report_reads_the_loss_curve_from_tensorboard(grid):
    from experiments.runs import read_loss

    run = grid / "rope" / "seed0" / "pretrain"
    curve = read_loss(run)
    assert [step for step, _ in curve] == [1, 2, 3]
    assert [value for _, value in curve] == pytest.approx([losses(run)[s] for s in (1, 2, 3)], rel=1e-6)


def test_report_refuses_an_unfinished_sweep_and_writes_nothing(grid, tmp_path):
    broken = tmp_path / "tiny"
    shutil.copytree(grid, broken)
    (broken / "rope" / "seed1" / "finetune" / "accuracy.json").unlink()
    out = tmp_path / "docs" / "results.md"
    result = report(str(broken), "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: {broken / 'rope' / 'seed1' / 'finetune' / 'accuracy.json'}: missing")
    assert not (tmp_path / "docs").exists()
    result = report(str(tmp_path), "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path}: no sweep.json (not a sweep directory; python -m experiments.sweep writes one)"


def test_sweep_names_a_corrupt_run_record_and_runs_nothing(grid, world):
    record = grid / "vanilla" / "seed1" / "finetune" / "run.json"
    saved, manifest = record.read_bytes(), (grid / "sweep.json").read_bytes()
    logs = {log: log.stat().st_size for log in (grid / "logs").glob("*.log")}
    record.write_text('{"attempts": [', encoding="utf-8")
    try:
        result = sweep("configs/demo", "--data", str(world), "--out", str(grid), *GRID, *TINY_SWEEP)
    finally:
        record.write_bytes(saved)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {record}: ")
    assert line.endswith("; the sweep cannot tell whether this run finished: repair the file or remove the run's directory")
    assert (grid / "sweep.json").read_bytes() == manifest
    assert {log: log.stat().st_size for log in (grid / "logs").glob("*.log")} == logs


def test_report_names_a_corrupt_run_record_and_writes_nothing(grid, tmp_path):
    broken = tmp_path / "tiny"
    shutil.copytree(grid, broken)
    record = broken / "rope" / "seed0" / "pretrain" / "run.json"
    record.write_text("not a record", encoding="utf-8")
    result = report(str(broken), "--out", str(tmp_path / "docs" / "results.md"))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {record}: ")
    assert line.endswith("; the report needs each run's record of attempts (wall time, device)")
    assert not (tmp_path / "docs").exists()


def duration(seconds: float) -> str:
    """The report's wall-time format (the tiny grid takes under an hour)."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def span(low: str, high: str) -> str:
    return low if low == high else f"{low}–{high}"


PREFACE = """What the tiny grid shows.

- vanilla gains {{gain sweep=tiny variant=vanilla}} points (per seed {{gain_range sweep=tiny variant=vanilla}}).
- rope pretrained: {{accuracy sweep=tiny variant=rope setting=pretrained}}%; every run: {{accuracy_range sweep=tiny}}%.
- pretraining ends at {{final_loss_range sweep=tiny phase=pretrain}}; rope seed 1: {{final_loss_range sweep=tiny phase=pretrain variant=rope seed=1}}.
- all runs: {{wall_time sweep=tiny}}; the finetunes {{wall_time_range sweep=tiny phase=finetune}}.
- London {{london sweep=tiny}}%; reference {{reference variant=vanilla setting=pretrained}}%; {{config sweep=tiny phase=pretrain key=train.max_steps}} steps.
"""


def test_report_fills_the_preface_with_the_runs_numbers(grid, world, tmp_path):
    def accuracy(variant: str, seed: int, phase: str) -> float:
        return 100 * json.loads((grid / variant / f"seed{seed}" / phase / "accuracy.json").read_text())["accuracy"]

    def final_loss(variant: str, seed: int) -> float:
        return losses(grid / variant / f"seed{seed}" / "pretrain")[3]

    def seconds(variant: str, seed: int, phase: str) -> float:
        return sum(a["seconds"] for a in attempts(grid / variant / f"seed{seed}" / phase))

    pre, scratch = ([accuracy("vanilla", s, p) for s in (0, 1)] for p in ("finetune", "finetune_scratch"))
    gains = [a - b for a, b in zip(pre, scratch)]
    rope = [accuracy("rope", s, "finetune") for s in (0, 1)]
    every = [accuracy(v, s, p) for v in ("vanilla", "rope") for s in (0, 1) for p in ("finetune", "finetune_scratch")]
    pretrain = [final_loss(v, s) for v in ("vanilla", "rope") for s in (0, 1)]
    finetunes = [seconds(v, s, "finetune") for v in ("vanilla", "rope") for s in (0, 1)]
    total = sum(seconds(v, s, p) for v in ("vanilla", "rope") for s in (0, 1) for p in PHASES)
    answers = [line.split("\t")[1] for line in (world / "birth_dev.tsv").read_text().splitlines()]
    preface = tmp_path / "preface.md"
    preface.write_text(PREFACE, encoding="utf-8")
    out = tmp_path / "docs" / "results.md"
    result = report(str(grid), "--out", str(out), "--preface", str(preface))
    assert result.returncode == 0, result.stderr
    markdown = out.read_text()
    assert "{{" not in markdown and "What the tiny grid shows." in markdown
    expected = [
        f"- vanilla gains {statistics.mean(pre) - statistics.mean(scratch):+.1f} points "
        f"(per seed {min(gains):+.1f} to {max(gains):+.1f}).",
        f"- rope pretrained: {statistics.mean(rope):.1f} ± {statistics.stdev(rope):.1f}%; "
        f"every run: {span(f'{min(every):.1f}', f'{max(every):.1f}')}%.",
        f"- pretraining ends at {span(f'{min(pretrain):.2f}', f'{max(pretrain):.2f}')}; rope seed 1: {final_loss('rope', 1):.2f}.",
        f"- all runs: {duration(total)}; the finetunes {span(duration(min(finetunes)), duration(max(finetunes)))}.",
        f"- London {100 * answers.count('London') / 16:.1f}%; reference 21.6–30.6%; 3 steps.",
    ]
    for line in expected:
        assert line in markdown.splitlines()


@pytest.mark.parametrize("placeholder, problem", [
    ("{{gain sweep=tiny variant=perceiver}}",
     "{{gain sweep=tiny variant=perceiver}}: unknown variant 'perceiver' (sweep tiny holds vanilla, rope)"),
    ("{{accuracy sweep=tiny variant=rope setting=finetuned}}",
     "{{accuracy sweep=tiny variant=rope setting=finetuned}}: unknown setting 'finetuned' (sweep tiny holds scratch, pretrained)"),
    ("{{wall_time sweep=spec}}", "{{wall_time sweep=spec}}: unknown sweep 'spec' (this report's sweeps: tiny)"),
    ("{{gains sweep=tiny variant=rope}}", "{{gains sweep=tiny variant=rope}}: unknown placeholder 'gains' (known: gain, "),
    ("{{london sweep=tiny", "unclosed placeholder (a {{...}} opens and closes on one line)"),
])
def test_report_names_a_bad_placeholder_by_file_and_line(grid, tmp_path, placeholder, problem):
    preface = tmp_path / "preface.md"
    preface.write_text(f"London scores {{{{london sweep=tiny}}}}%.\n\nThen {placeholder} here.\n", encoding="utf-8")
    result = report(str(grid), "--out", str(tmp_path / "docs" / "results.md"), "--preface", str(preface))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {preface}:3: {problem}")
    assert not (tmp_path / "docs").exists()


def test_sweep_checks_every_question_file_against_the_corpus_before_pretraining(world, tmp_path):
    """A world of one's own whose corpus never writes a capital W: the finetuning file's first line is
    named before the sweep starts, instead of after pretraining."""
    data = tmp_path / "world"
    shutil.copytree(world, data)
    corpus = data / "wiki.txt"
    corpus.write_text(corpus.read_text(encoding="utf-8").replace("W", "V"), encoding="utf-8")
    out = tmp_path / "out"
    result = sweep("configs/demo", "--data", str(data), "--out", str(out), "--variants", "vanilla", "--seeds", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"error: {data / 'birth_places_train.tsv'}:1: character 'W' (U+0057) is not in the "
                             f"vocabulary (the vocabulary of {corpus}, which vanilla seed 0 finetune would use); "
                             "nothing was run\n")
    assert not out.exists()
    mixed = sweep("configs/demo", "--data", str(data), "--out", str(out), "--variants", "vanilla", "--seeds", "0",
                  "--set", "data.question_mix=0.3")  # pretraining would read the questions too: named first
    assert mixed.returncode == 2 and "which vanilla seed 0 pretrain would use); nothing was run" in mixed.stderr
    assert not out.exists()
