"""`python -m experiments.memorization EXPORT --corpus wiki.txt --questions FILE`: what pretraining stored.

    python -m experiments.memorization runs/cpu/vanilla/seed0/pretrain/export \
        --corpus datasets/birthplaces/wiki.txt --questions selection/birth_dev.tsv

QA accuracy mixes two things: whether a fact was stored, and whether a question can reach it. This
measures the first alone. For each question whose person's own document (the one titled with the
name) states the answer, the model is shown that document up to the answer and must write the
answer, in two forms:

- continue: the document's text up to the answer, greedy continuation (what a text-trained model
  was taught);
- infill: span corruption's form, `text before ⁇ text after ⁇`, the answer as the masked span (what
  SPEC's recipe taught), on the first 7/8 of a block as the corruption shows.

Answers only score: nothing here trains. Prints one line per form and writes `--out` (JSON) when
given, under a temporary name. People without such a document are counted and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from data.atomic import write_text_atomically
from data.birthplaces import Question, read_questions
from data.corpus import DocumentCorpus
from data.corruption import longest_truncation
from data.errors import DataError
from data.vocab import MASK, Vocabulary
from launcher.export import read_export
from model import GPT
from model.generate import generate

PROG = "python -m experiments.memorization"
QUESTION_PREFIX, QUESTION_SUFFIX = "Where was ", " born?"


@dataclass(frozen=True)
class Probe:
    """One stored fact to recall: the person's document and where the answer starts in it."""

    document: str
    start: int
    answer: str


@dataclass(frozen=True)
class Recall:
    form: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"recall ({self.form}): {self.correct} out of {self.total}: {100 * self.accuracy:.1f}%"


def person_of(question: Question) -> str | None:
    text = question.text
    if text.startswith(QUESTION_PREFIX) and text.endswith(QUESTION_SUFFIX):
        return text[len(QUESTION_PREFIX): -len(QUESTION_SUFFIX)]
    return None


def documents_by_title(corpus: DocumentCorpus) -> dict[str, list[str]]:
    """Documents keyed by their title, the text before the first ". " (the corpus's "Name. text" shape)."""
    titled: dict[str, list[str]] = {}
    for index in range(len(corpus)):
        document = corpus.document(index)
        title, sep, _ = document.partition(". ")
        if sep:
            titled.setdefault(title, []).append(document)
    return titled


def probes_for(questions: list[Question], titled: dict[str, list[str]], vocab: Vocabulary) -> list[Probe]:
    """A probe per question whose person's document states the answer after the title (first such place)."""
    probes = []
    for question in questions:
        name = person_of(question)
        for document in titled.get(name, []) if name else []:
            start = document.find(question.answer, len(name) + 2)
            if start > 0 and all(ch in vocab for ch in document):
                probes.append(Probe(document, start, question.answer))
                break
    return probes


def prompts(probes: list[Probe], form: str, block_size: int) -> list[str]:
    if form == "continue":
        return [p.document[: p.start] for p in probes]
    shown = longest_truncation(block_size)
    return [p.document[: p.start] + MASK + p.document[p.start + len(p.answer): shown] + MASK for p in probes]


def recall(model: GPT, vocab: Vocabulary, probes: list[Probe], form: str, batch_size: int = 128) -> Recall:
    """Greedy decoding of each answer's length: correct when it is the answer exactly."""
    texts = prompts(probes, form, model.config.block_size)
    correct = 0
    for start in range(0, len(probes), batch_size):
        chunk = probes[start: start + batch_size]
        steps = max(len(p.answer) for p in chunk)
        encoded = [vocab.encode(t).tolist() for t in texts[start: start + batch_size]]
        for probe, tokens in zip(chunk, generate(model, encoded, steps)):
            correct += vocab.decode(tokens[: len(probe.answer)]) == probe.answer
    return Recall(form, correct, len(probes))


def measure(export_dir: Path, corpus_path: Path, questions_path: Path) -> tuple[list[Recall], int, int]:
    """(recall per form, questions asked, questions without a document stating the answer)."""
    export = read_export(export_dir)
    model = GPT(export.model_config)
    model.load_state_dict(export.state_dict)
    questions = read_questions(questions_path, require_answers=True)
    probes = probes_for(questions, documents_by_title(DocumentCorpus(corpus_path)), export.vocab)
    if not probes:
        raise DataError(str(questions_path), "no question's person has a document in the corpus that states the answer")
    with torch.inference_mode():
        results = [recall(model, export.vocab, probes, form) for form in ("continue", "infill")]
    return results, len(questions), len(questions) - len(probes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("export", type=Path, help="an export directory (a run's export/)")
    parser.add_argument("--corpus", type=Path, required=True, help="the pretraining corpus")
    parser.add_argument("--questions", type=Path, required=True, help="question<TAB>place file")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    try:
        results, asked, skipped = measure(args.export, args.corpus, args.questions)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(result)
    print(f"{skipped} of {asked} questions skipped: no document titled with the person states the answer")
    if args.out:
        write_measurement(args.out, args.questions, results, asked, skipped)
    return 0


def write_measurement(path: Path, questions: Path, results: list[Recall], asked: int, skipped: int) -> None:
    payload = {"questions": str(questions), "asked": asked, "skipped": skipped,
               "recall": {r.form: {**asdict(r), "accuracy": r.accuracy} for r in results}}
    write_text_atomically(path, json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
