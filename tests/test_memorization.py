"""`python -m experiments.memorization`: recall of a fact from its own document, apart from QA.

A model trained on a handful of biographies until it knows them must recall their birth places in
the `continue` form; the same model before training must not. Bad input is one line."""

from __future__ import annotations

import json

from conftest import CONFIGS, run_module
from launch import check, launch

PEOPLE = [("Ann Lee", "Oslo"), ("Bo Kim", "Lima"), ("Cy Dunn", "Rome"), ("Di Fox", "Kyiv"), ("Ed Ray", "Baku"),
          ("Flo Hart", "Riga")]


def tiny_world(root):
    root.mkdir()
    (root / "wiki.txt").write_text("".join(f"{n}. {n} was born in {p} .\n" for n, p in PEOPLE)
                                   + "Where was who born? Nobody knows .\n", encoding="utf-8")
    (root / "questions.tsv").write_text("".join(f"Where was {n} born?\t{p}\n" for n, p in PEOPLE)
                                        + "Where was Gus Nye born?\tOslo\n", encoding="utf-8")
    return root


def pretrain(world, run, steps: int):
    overrides = [f"run_dir={run}", f"data.corpus={world / 'wiki.txt'}", "data.objective=text", "data.block_size=64",
                 "model.n_layer=2", "model.n_embd=64", "model.n_head=2", "model.dropout=0", "train.global_batch_size=7",
                 "train.learning_rate=0.01", "train.warmup_tokens=0", f"train.max_steps={steps}", "train.epochs=1000",
                 "train.final_tokens=100000000", "train.log_every=1000"]
    check(launch([str(CONFIGS / "pretrain.yaml")], overrides, launcher="python"))
    return run / "export"


def test_a_model_that_stored_the_facts_recalls_them_and_an_untrained_one_does_not(tmp_path):
    world = tiny_world(tmp_path / "w")
    results = {}
    for steps in (1, 150):
        export = pretrain(world, tmp_path / f"run{steps}", steps)
        out = tmp_path / f"memorization{steps}.json"
        result = run_module("experiments.memorization", str(export), "--corpus", str(world / "wiki.txt"),
                            "--questions", str(world / "questions.tsv"), "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert "1 of 7 questions skipped" in result.stdout  # Gus Nye has no document
        results[steps] = json.loads(out.read_text(encoding="utf-8"))["recall"]
    assert results[150]["continue"]["correct"] == 6 and results[150]["continue"]["total"] == 6
    assert results[1]["continue"]["correct"] == 0


def test_bad_questions_are_one_line(tmp_path):
    world = tiny_world(tmp_path / "w")
    export = pretrain(world, tmp_path / "run", 1)
    (world / "bad.tsv").write_text("Where was Ann Lee born?\n", encoding="utf-8")
    result = run_module("experiments.memorization", str(export), "--corpus", str(world / "wiki.txt"),
                        "--questions", str(world / "bad.tsv"), "--out", str(tmp_path / "m.json"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "bad.tsv:1" in result.stderr
    assert not (tmp_path / "m.json").exists()
    (world / "nobody.tsv").write_text("Where was Gus Nye born?\tOslo\n", encoding="utf-8")
    result = run_module("experiments.memorization", str(export), "--corpus", str(world / "wiki.txt"),
                        "--questions", str(world / "nobody.tsv"))
    assert result.returncode == 1 and "no question's person has a document" in result.stderr
