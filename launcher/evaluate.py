"""Distributed evaluation: each rank decodes a share of the questions, rank 0 writes the results.

The prediction is the text between the first and second ⁇ of question + ⁇ + completion (SPEC).
Outputs are written under temporary names and renamed, so a failure leaves no partial files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from data.atomic import write_text_atomically
from data.birthplaces import Question
from data.vocab import MASK, Vocabulary
from launcher.distributed import DistributedContext
from model import GPT
from model.generate import generate


@dataclass(frozen=True)
class Score:
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    def __str__(self) -> str:
        return f"Correct: {self.correct} out of {self.total}: {100 * self.accuracy:.1f}%"


def prediction_of(completion: str) -> str:
    """SPEC: the prediction is the text between the first and the second ⁇ of question + ⁇ + output."""
    return completion.split(MASK)[1]


def predict_shard(model: GPT, vocab: Vocabulary, questions: list[str], batch_size: int, max_new_tokens: int) -> list[str]:
    """Predictions for `questions`, decoded in batches of similar length (less padding)."""
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
    predictions = [""] * len(questions)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        prompts = [vocab.encode(questions[i] + MASK).tolist() for i in chunk]
        for i, tokens in zip(chunk, generate(model, prompts, max_new_tokens, stop_id=vocab.mask_id)):
            predictions[i] = prediction_of(questions[i] + MASK + vocab.decode(tokens))
    return predictions


def predict(model: GPT, vocab: Vocabulary, questions: list[Question], context: DistributedContext,
            batch_size: int, max_new_tokens: int) -> list[str] | None:
    """All predictions in input order on rank 0 (None on other ranks); rank r takes every W-th question."""
    mine = list(range(context.rank, len(questions), context.world_size))
    shard = predict_shard(model, vocab, [questions[i].text for i in mine], batch_size, max_new_tokens)
    pairs = list(zip(mine, shard))
    if context.world_size > 1:
        gathered: list = [None] * context.world_size
        torch.distributed.all_gather_object(gathered, pairs)
        pairs = [pair for part in gathered for pair in part]
    if not context.is_main:
        return None
    predictions = [""] * len(questions)
    for index, prediction in pairs:
        predictions[index] = prediction
    return predictions


def answered(predictions: list[str], questions: list[Question]) -> list[bool]:
    """Per question, whether its prediction is its answer: the one rule a score counts (and the report re-reads)."""
    return [p == q.answer for p, q in zip(predictions, questions)]


def score(predictions: list[str], questions: list[Question]) -> Score | None:
    if questions[0].answer is None:
        return None
    return Score(sum(answered(predictions, questions)), len(questions))


def write_results(run_dir: Path, predictions_name: str, predictions: list[str], result: Score | None) -> None:
    """One prediction per line; a newline the model produced inside a prediction becomes a space."""
    lines = "".join(p.replace("\n", " ") + "\n" for p in predictions)
    write_text_atomically(run_dir / predictions_name, lines)
    if result is not None:
        payload = {"correct": result.correct, "total": result.total, "accuracy": result.accuracy}
        write_text_atomically(run_dir / "accuracy.json", json.dumps(payload, indent=1) + "\n")


def samples_markdown(questions: list[Question], predictions: list[str], count: int) -> str:
    rows = ["| question | prediction | answer |", "|---|---|---|"]
    for q, p in list(zip(questions, predictions))[:count]:
        rows.append(f"| {q.text} | {p} | {q.answer if q.answer is not None else ''} |")
    return "\n".join(rows)
