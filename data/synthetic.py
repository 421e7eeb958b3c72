"""`python -m data.synthetic OUT_DIR`: a fictional world of people and birth places.

Writes the real data set's four files: `wiki.txt` (one short biography per person, as the real
corpus has one document per train, dev and test person, plus one short document per place, which
also carries the question characters `W` and `?` into the vocabulary), `birth_places_train.tsv`,
`birth_dev.tsv` and `birth_test_inputs.tsv` (questions only). Dev and test people never appear
in the finetuning file, so a model can answer them only from what pretraining stored. Dev answers
are balanced over the places, so the most common one is at most 10% of dev and guessing it is a
weak baseline, as "London" is on the real data. Everything is a function of (seed, sizes, style).

`--style simple` (the default) writes each biography in one of a few shapes that all open with
the name and state the birth place in the first sentence: an easy world, where an effect may owe
much to that one shape. `--style varied` writes the shapes real text has: the birth place before
or after the name, several sentence shapes, distractor sentences naming other places (where the
person lived, worked or died), pronouns in place of the name, and the fact anywhere in the
paragraph. `--style scattered` is `varied` with each person's sentences spread over two or three
documents that each open with the name, so the fact is often not in the first document.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from data.atomic import atomic_directory
from data.vocab import Vocabulary

ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t", "th", "v", "z"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rk"]
PLACE_ENDINGS = ["ford", "holm", "mere", "vik", "dale", "grad", "ona", "ia", "burg", "stead", "port", "ville"]
JOBS = [
    "painter", "physicist", "novelist", "footballer", "composer", "politician", "architect",
    "chemist", "sculptor", "historian", "engineer", "poet", "violinist", "botanist", "journalist",
]
TEMPLATES = [
    "{name}. {name} was born in {place} and worked as a {job} .",
    "{name}. Born in {place}, {surname} became a {job} .",
    "{name}. {name} ({year} - {death}) was a {job} born in {place} .",
    "{name}. {surname} is a {job} who was born in {place} and now lives in {other} .",
    "{name}. {name} is a {job} . {surname} was born in {place} in {year} .",
]


STYLES = ("simple", "varied", "scattered")
# varied: the sentence that states the birth place, in several shapes; {name} or {surname} or a pronoun refers
BIRTH_SENTENCES = [
    "{ref} was born in {place} in {year} .",
    "Born in {place}, {ref_lower} trained as {a_job} .",
    "{place} was the birthplace of {ref_lower} .",
    "A native of {place}, {ref_lower} spent the early years there .",
    "{ref} ({year} - {death}) was born at {place} .",
    "{ref} came into the world at {place}, a town of weavers .",
]
OTHER_SENTENCES = [
    "{ref} moved to {other} in {later} .",
    "{ref} worked for many years in {other} .",
    "{ref} died in {other} in {death} .",
    "{ref} is best known as {a_job} .",
    "{ref} studied in {other} and later taught there .",
    "{ref} married {a_job} from {other} .",
    "The works of {ref_lower} are held in {other} .",
]


@dataclass(frozen=True)
class Person:
    name: str
    place: str
    biography: str  # one document, or several joined by newlines (style scattered)


def syllable_word(rng: random.Random, syllables: int) -> str:
    word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(syllables)) + rng.choice(CODAS)
    return word.capitalize()


def unique_words(rng: random.Random, count: int, make) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = make()
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


PLACE_TEMPLATE = "{place}. {place} is a {size} on the {river} river . Who was born in {place}? Many a {job} ."


def place_documents(seed: int, place_names: list[str]) -> list[str]:
    rng = random.Random(f"spangpt-synthetic-places:{seed}")
    return [
        PLACE_TEMPLATE.format(
            place=place,
            size=rng.choice(["town", "city", "village"]),
            river=syllable_word(rng, 2),
            job=rng.choice(JOBS),
        )
        for place in place_names
    ]


def varied_biography(rng: random.Random, name: str, place: str, place_names: list[str], scattered: bool) -> str:
    """A paragraph (or, scattered, two or three documents) with the birth sentence among 1-3 distractors."""
    pronoun = rng.choice(["He", "She"])
    year = rng.randint(1820, 1930)
    job = rng.choice(JOBS)
    values = {"place": place, "a_job": ("an " if job[0] in "aeiou" else "a ") + job, "year": year, "death": year + rng.randint(30, 90),
              "later": year + rng.randint(18, 29)}

    def sentence(template: str, ref: str) -> str:
        others = [p for p in place_names if p != place]
        text = template.format(ref=ref, ref_lower=ref, other=rng.choice(others), **values)
        return text[0].upper() + text[1:]

    def reference(template: str) -> str:
        # A pronoun only where it is the sentence's subject: "He moved", never "the works of he".
        subject = template.startswith("{ref} ") and not template.startswith("{ref} (")
        return rng.choice([surname, pronoun, name] if subject else [surname, name])

    surname = name.split()[-1]
    sentences = [rng.choice(BIRTH_SENTENCES)] + rng.sample(OTHER_SENTENCES, rng.randint(1, 3))
    rng.shuffle(sentences)
    # The first sentence names the person in full; later ones by surname or pronoun, as real paragraphs do.
    parts = [sentence(t, name if i == 0 else reference(t)) for i, t in enumerate(sentences)]
    if not scattered or len(parts) == 1:
        return f"{name}. " + " ".join(parts)
    cut = rng.randint(1, len(parts) - 1)
    groups = [parts[:cut], parts[cut:]]
    return "\n".join(f"{name}. " + " ".join(group) for group in groups)


def build_world(seed: int, train: int, dev: int, test: int, places: int,
                style: str = "simple") -> tuple[list[Person], list[Person], list[Person]]:
    """People split into finetuning (train), dev and test, each with a biography."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if min(train, dev) < 1 or test < 0:
        raise ValueError("train and dev need at least one person, test cannot be negative")
    if places < 10:
        raise ValueError("at least 10 places are needed to keep the most common dev answer <= 10%")
    rng = random.Random(f"spangpt-synthetic:{seed}")
    place_names = unique_words(rng, places, lambda: syllable_word(rng, rng.randint(1, 2)) + rng.choice(PLACE_ENDINGS))
    total = train + dev + test
    names = unique_words(rng, total, lambda: f"{syllable_word(rng, rng.randint(1, 2))} {syllable_word(rng, rng.randint(1, 3))}")
    # Balanced birthplaces per split: each split cycles through a shuffled place list.
    def balanced(count: int) -> list[str]:
        order = place_names[:]
        rng.shuffle(order)
        return [order[i % places] for i in range(count)]

    births = balanced(train) + balanced(dev) + balanced(test)
    people = []
    for name, place in zip(names, births):
        if style != "simple":
            people.append(Person(name, place, varied_biography(rng, name, place, place_names, style == "scattered")))
            continue
        template = rng.choice(TEMPLATES)
        year = rng.randint(1820, 1930)
        biography = template.format(
            name=name,
            surname=name.split()[-1],
            place=place,
            other=rng.choice([p for p in place_names if p != place]),
            job=rng.choice(JOBS),
            year=year,
            death=year + rng.randint(30, 90),
        )
        people.append(Person(name, place, biography))
    return people[:train], people[train : train + dev], people[train + dev :]


def question(person: Person) -> str:
    return f"Where was {person.name} born?"


def write_world(out_dir: str | Path, seed: int, train: int, dev: int, test: int, places: int, overwrite: bool,
                style: str = "simple") -> dict:
    train_people, dev_people, test_people = build_world(seed, train, dev, test, places, style)
    people = train_people + dev_people + test_people
    corpus = [doc for p in people for doc in p.biography.split("\n")] + place_documents(seed, sorted({p.place for p in people}))
    random.Random(f"spangpt-synthetic-order:{seed}").shuffle(corpus)
    vocab = Vocabulary.from_text("\n".join(corpus))
    for p in people:  # every question and answer must be expressible in the corpus's vocabulary
        vocab.encode(question(p) + p.place)
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        (staging / "wiki.txt").write_text("".join(doc + "\n" for doc in corpus), encoding="utf-8")
        (staging / "birth_places_train.tsv").write_text(
            "".join(f"{question(p)}\t{p.place}\n" for p in train_people), encoding="utf-8"
        )
        (staging / "birth_dev.tsv").write_text("".join(f"{question(p)}\t{p.place}\n" for p in dev_people), encoding="utf-8")
        (staging / "birth_test_inputs.tsv").write_text("".join(f"{question(p)}\n" for p in test_people), encoding="utf-8")
    top_place, top_count = Counter(p.place for p in dev_people).most_common(1)[0]
    return {"people": len(people), "documents": len(corpus), "train": train, "dev": dev, "test": test,
            "top_dev": (top_place, top_count)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=1000, help="people in the finetuning file")
    parser.add_argument("--dev", type=int, default=250, help="people in the dev file")
    parser.add_argument("--test", type=int, default=250, help="people in the test inputs (questions only)")
    parser.add_argument("--places", type=int, default=40, help="distinct birth places")
    parser.add_argument("--style", choices=STYLES, default="simple",
                        help="simple: one shape, fact first; varied: real text's shapes and distractors; "
                             "scattered: varied, over several documents per person")
    parser.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    args = parser.parse_args(argv)
    try:
        summary = write_world(args.out_dir, args.seed, args.train, args.dev, args.test, args.places, args.force, args.style)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    place, count = summary["top_dev"]
    print(
        f"{args.out_dir}: {summary['people']} biographies in {summary['documents']} documents; "
        f"{summary['train']} train, {summary['dev']} dev, "
        f"{summary['test']} test questions; most common dev answer {place} ({count}/{summary['dev']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
