"""The synthetic world: the project's default data, with the properties the experiment needs."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import run_module
from data.birthplaces import read_questions
from data.corruption import CharCorruptionDataset
from data.names import NameDataset
from data.vocab import Vocabulary


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("worlds") / "w"
    result = run_module("data.synthetic", str(out), "--seed", "5", "--train", "400", "--dev", "120", "--test", "80")
    assert result.returncode == 0, result.stderr
    assert "600 biographies in 640 documents" in result.stdout
    return out


def test_files_are_in_the_real_format(world):
    assert sorted(p.name for p in world.iterdir()) == [
        "birth_dev.tsv", "birth_places_train.tsv", "birth_test_inputs.tsv", "wiki.txt"
    ]
    train = read_questions(world / "birth_places_train.tsv", require_answers=True)
    dev = read_questions(world / "birth_dev.tsv", require_answers=True)
    test = read_questions(world / "birth_test_inputs.tsv", require_answers=False)
    assert (len(train), len(dev), len(test)) == (400, 120, 80)
    assert all(q.answer is None for q in test)
    assert all(q.text.startswith("Where was ") and q.text.endswith(" born?") for q in train + dev + test)
    corpus = (world / "wiki.txt").read_text(encoding="utf-8")
    pretraining = CharCorruptionDataset(corpus, 128)
    assert len(pretraining) == 600 + 40  # a biography per person, a document per place
    NameDataset(pretraining, (world / "birth_dev.tsv").read_text(encoding="utf-8"), source="birth_dev.tsv")


def person(q) -> str:
    return q.text.removeprefix("Where was ").removesuffix(" born?")


def test_dev_and_test_people_never_appear_in_finetuning(world):
    train_people = {person(q) for q in read_questions(world / "birth_places_train.tsv", True)}
    finetuning_text = (world / "birth_places_train.tsv").read_text(encoding="utf-8")
    for name in ("birth_dev.tsv", "birth_test_inputs.tsv"):
        for q in read_questions(world / name, False):
            assert person(q) not in train_people and person(q) not in finetuning_text


def test_every_person_has_a_biography_with_the_fact(world):
    documents = (world / "wiki.txt").read_text(encoding="utf-8").splitlines()
    by_name = {doc.split(". ", 1)[0]: doc for doc in documents}
    assert len(by_name) == len(documents)  # one document per person or place
    for name in ("birth_places_train.tsv", "birth_dev.tsv"):
        for q in read_questions(world / name, True):
            doc = by_name[person(q)]
            assert f"orn in {q.answer}" in doc  # "born in" or "Born in"
            assert doc.index(q.answer) + len(q.answer) <= 112  # the fact survives SPEC's truncation
    for q in read_questions(world / "birth_test_inputs.tsv", False):
        assert person(q) in by_name


def test_most_common_dev_answer_is_at_most_ten_percent(world):
    answers = Counter(q.answer for q in read_questions(world / "birth_dev.tsv", True))
    assert answers.most_common(1)[0][1] <= 0.10 * 120
    assert len(answers) >= 10


def test_world_is_a_function_of_seed_and_sizes(world, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    assert run_module("data.synthetic", str(again), "--seed", "5", "--train", "400", "--dev", "120", "--test", "80").returncode == 0
    assert run_module("data.synthetic", str(other), "--seed", "6", "--train", "400", "--dev", "120", "--test", "80").returncode == 0
    for name in ("wiki.txt", "birth_dev.tsv"):
        assert (again / name).read_bytes() == (world / name).read_bytes()
        assert (other / name).read_bytes() != (world / name).read_bytes()


def test_prepare_turns_the_world_into_shards_and_vocabulary(world, tmp_path):
    result = run_module("data.prepare", str(world / "wiki.txt"), str(tmp_path / "prepared"), "--shard-mb", "0.02")
    assert result.returncode == 0, result.stderr
    assert "640 documents" in result.stdout
    vocab = Vocabulary.load(tmp_path / "prepared" / "vocab.json")
    assert vocab == Vocabulary.from_text((world / "wiki.txt").read_text(encoding="utf-8"))
    assert len(list((tmp_path / "prepared").glob("shard-*.txt"))) >= 2


@pytest.mark.parametrize("style", ["varied", "scattered"])
def test_varied_worlds_state_the_fact_in_real_texts_shapes(style, tmp_path):
    """Varied worlds keep the experiment's properties but not the easy shape: the birth place comes
    before or after the name, other places distract, and (scattered) the fact may sit in any of a
    person's documents."""
    out = tmp_path / style
    result = run_module("data.synthetic", str(out), "--style", style, "--seed", "3", "--train", "300", "--dev", "100",
                        "--test", "20")
    assert result.returncode == 0, result.stderr
    documents = (out / "wiki.txt").read_text(encoding="utf-8").splitlines()
    by_name: dict[str, list[str]] = {}
    for doc in documents:
        by_name.setdefault(doc.split(". ", 1)[0], []).append(doc)
    place_first = fact_not_first = distracted = 0
    places_named = {a.answer for a in read_questions(out / "birth_places_train.tsv", True)}
    for name in ("birth_places_train.tsv", "birth_dev.tsv"):
        for q in read_questions(out / name, True):
            docs = by_name[person(q)]
            with_fact = [d for d in docs if q.answer in d]
            assert with_fact, q.text  # the fact is in the person's own documents
            fact = with_fact[0]
            sentence = next(s for s in fact.split(". ", 1)[1].split(" . ") if q.answer in s)
            named_at = min(sentence.find(ref) % 1000 for ref in (person(q).split()[-1], "He ", "She "))
            place_first += sentence.index(q.answer) < named_at  # "Born in X, Name ...", "X was the birthplace of"
            fact_not_first += docs.index(fact) > 0
            distracted += any(p in " ".join(docs) for p in places_named - {q.answer})  # another place named
    people = 400
    assert distracted > 0.6 * people
    assert 0.2 * people < place_first < 0.8 * people
    assert sum(len(d) > 1 for d in by_name.values()) > (0.5 * people if style == "scattered" else -1)
    assert (fact_not_first > 0.2 * people) if style == "scattered" else fact_not_first == 0
    answers = Counter(q.answer for q in read_questions(out / "birth_dev.tsv", True))
    assert answers.most_common(1)[0][1] <= 0.10 * 100


def test_unknown_style_is_one_line(tmp_path):
    result = run_module("data.synthetic", str(tmp_path / "w"), "--style", "ornate")
    assert result.returncode == 2 and "invalid choice: 'ornate'" in result.stderr
    assert not (tmp_path / "w").exists()
