"""python -m data.selection: training questions held out for choosing recipes, never the dev file."""

from __future__ import annotations

import json

from conftest import run_module


def lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_holds_out_a_seeded_share_of_the_training_questions(world, tmp_path):
    out = tmp_path / "selection"
    result = run_module("data.selection", str(world), str(out), "--holdout", "12", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{out}: 48 training questions in birth_places_train.tsv, 12 held out")
    train, selection, original = lines(out / "birth_places_train.tsv"), lines(out / "birth_dev.tsv"), lines(world / "birth_places_train.tsv")
    assert len(train) == 48 and len(selection) == 12 and not set(train) & set(selection)
    assert sorted(train + selection) == sorted(original)
    assert train == [line for line in original if line in set(train)]  # file order kept
    assert not set(selection) & set(lines(world / "birth_dev.tsv"))  # the dev file never enters
    assert not (out / "birth_test_inputs.tsv").exists()
    assert (out / "wiki.txt").read_bytes() == (world / "wiki.txt").read_bytes()
    assert json.loads((out / "selection.json").read_text())["holdout"] == 12
    again = tmp_path / "again"
    assert run_module("data.selection", str(world), str(again), "--holdout", "12", "--seed", "1").returncode == 0
    assert lines(again / "birth_dev.tsv") == selection  # a function of (file, holdout, seed)
    other = tmp_path / "other"
    assert run_module("data.selection", str(world), str(other), "--holdout", "12", "--seed", "2").returncode == 0
    assert lines(other / "birth_dev.tsv") != selection


def test_bad_requests_are_one_line_and_write_nothing(world, tmp_path):
    out = tmp_path / "selection"
    result = run_module("data.selection", str(world), str(out), "--holdout", "60")
    assert result.returncode == 1 and not out.exists()
    assert result.stderr == (f"error: {world / 'birth_places_train.tsv'}: cannot hold out 60 of its 60 questions "
                             "(--holdout must be 1 to 59)\n")
    result = run_module("data.selection", str(tmp_path), str(out))
    assert result.returncode == 1 and not out.exists()
    assert result.stderr == f"error: {tmp_path / 'birth_places_train.tsv'}: question file not found\n"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_module("data.selection", str(world), str(out), "--holdout", "6")
    assert result.returncode == 1 and "already exists and is not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
