"""Benchmark 3: spangpt's batched evaluation against SPEC's one-question loop, same weights.

The baseline is the reference model (bench/reference_gpt.py) given spangpt's weights, decoding
each question alone with a full forward per character for 32 characters, as SPEC's evaluation
does. spangpt decodes through launcher.evaluate.predict_shard: length-sorted batches, a key/value
cache, rows leaving the batch at their closing ⁇. The predictions must be identical.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.common import DataSet, spec_model_config
from bench.reference_gpt import ReferenceGPT, generate_reference
from data.birthplaces import read_questions
from data.corpus import DocumentCorpus, corpus_vocabulary
from data.vocab import MASK, Vocabulary
from launcher.evaluate import predict_shard, prediction_of
from launcher.export import read_export
from model import GPT


@dataclass(frozen=True)
class EvaluationResult:
    questions: int
    spangpt_seconds: float
    baseline_seconds: float
    identical: int
    model: str


def spec_model(data: DataSet, export: Path | None) -> tuple[GPT, Vocabulary, str]:
    """A trained export when given; otherwise SPEC's vanilla model, initialised with seed 0."""
    if export is not None:
        loaded = read_export(export)
        model = GPT(loaded.model_config)
        model.load_state_dict(loaded.state_dict)
        return model, loaded.vocab, f"trained export {export}"
    vocab = corpus_vocabulary(DocumentCorpus(data.corpus))
    torch.manual_seed(0)
    model = GPT(spec_model_config(len(vocab)))
    return model, vocab, "vanilla, SPEC size, untrained (seed 0)"


def reference_copy(model: GPT) -> ReferenceGPT:
    c = model.config
    reference = ReferenceGPT(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, pdrop=0.0)
    missing, unexpected = reference.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not name.endswith("attn.mask") for name in missing):
        raise RuntimeError(f"reference model does not match spangpt's: missing {missing}, unexpected {unexpected}")
    return reference


def baseline_predictions(model: ReferenceGPT, vocab: Vocabulary, questions: list[str], steps: int) -> list[str]:
    predictions = []
    for text in questions:
        x = torch.from_numpy(vocab.encode(text + MASK)).long()[None]
        predictions.append(prediction_of(vocab.decode(generate_reference(model, x, steps)[0].tolist())))
    return predictions


def run(data: DataSet, export: Path | None, limit: int | None, batch_size: int = 128, steps: int = 32) -> EvaluationResult:
    model, vocab, description = spec_model(data, export)
    model.eval()
    questions = [q.text for q in read_questions(data.dev, require_answers=False)][:limit]
    start = time.perf_counter()
    ours = predict_shard(model, vocab, questions, batch_size, steps)
    ours_seconds = time.perf_counter() - start
    reference = reference_copy(model)
    start = time.perf_counter()
    theirs = baseline_predictions(reference, vocab, questions, steps)
    baseline_seconds = time.perf_counter() - start
    identical = sum(a == b for a, b in zip(ours, theirs))
    return EvaluationResult(len(questions), ours_seconds, baseline_seconds, identical, description)
