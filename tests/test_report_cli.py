"""The small command lines beside the report: the constant-answer baselines and the runs' accuracy lines."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_module

QUESTIONS = [("Where was Ada born?", "Paris"), ("Where was Bo born?", "London"), ("Where was Cy born?", "Berlin"),
             ("Where was Di born?", "Paris"), ("Where was Ed born?", "Berlin"), ("Where was Fa born?", "London"),
             ("Where was Gu born?", "Paris"), ("Where was Ho born?", "Berlin")]


def test_baselines_score_london_and_the_most_common_answer(tmp_path):
    questions = tmp_path / "dev.tsv"
    questions.write_text("".join(f"{q}\t{a}\n" for q, a in QUESTIONS), encoding="utf-8")
    result = run_module("experiments.baselines", str(questions))
    assert result.returncode == 0, result.stderr
    # Paris and Berlin tie at 3 of 8; the first in file order is the most common answer.
    assert result.stdout == "Correct: 2 out of 8: 25.0%\nMost common answer (Paris): Correct: 3 out of 8: 37.5%\n"


def test_baselines_on_the_real_dev_file(real_data):
    result = run_module("experiments.baselines", str(real_data / "birth_dev.tsv"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Correct: 25 out of 500: 5.0%\nMost common answer (London): Correct: 25 out of 500: 5.0%\n"


def test_baselines_name_a_bad_file_in_one_line(tmp_path):
    bad = tmp_path / "q.tsv"
    bad.write_text("Where was Ada born?\tParis\nWhere was Bo born?\n", encoding="utf-8")
    result = run_module("experiments.baselines", str(bad))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: {bad}:2: expected exactly one tab (question<TAB>place), found 0\n"
    result = run_module("experiments.baselines", str(tmp_path / "missing.tsv"))
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'missing.tsv'}: question file not found\n"


def write_accuracy(run_dir: Path, correct: int, total: int) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "accuracy.json").write_text(json.dumps({"correct": correct, "total": total, "accuracy": correct / total}))
    return run_dir


def test_accuracy_prints_each_run_under_its_label(tmp_path):
    pretrained, scratch = write_accuracy(tmp_path / "a", 13, 100), write_accuracy(tmp_path / "b", 1, 100)
    result = run_module("experiments.accuracy", str(pretrained), str(scratch), "--label", "pretrained", "--label", "scratch")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pretrained: Correct: 13 out of 100: 13.0%\nscratch: Correct: 1 out of 100: 1.0%\n"


def test_accuracy_names_a_run_without_accuracy_and_prints_the_others(tmp_path):
    done = write_accuracy(tmp_path / "done", 3, 16)
    result = run_module("experiments.accuracy", str(tmp_path / "unfinished"), str(done))
    assert result.returncode == 1
    assert result.stdout == f"{done}: Correct: 3 out of 16: 18.8%\n"
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'unfinished' / 'accuracy.json'}: ")
