"""Finetuning with replay: SPEC's span corruption of the pretraining documents among the questions.

Pretraining stores about 40% of the held-out people's places where their own text asks for them
(docs/results-cpu.md), yet a 5-epoch finetune answers under 10% of their questions: a finetune on
questions alone teaches the answer format while it wears away what the documents' objective built.
Replaying that objective among the questions keeps both acts in one model.

An epoch is every question once (as a plain finetune) plus `round(n * r / (1 - r))` replayed
documents, so a share r of the examples are documents. Replayed documents go through the corpus in
order across epochs, every document as often as any other; each pass draws new corruptions from
its own generator. Label-free: nothing but the corpus's text is replayed. With masking "salient"
the replayed corruption masks a name, number or date (data.salient), as a salient-masked
pretraining did: its model stores places in that infill form, and replay keeps the form it knows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from data.corpus import DocumentCorpus
from data.corruption import example_rng, shift_pair
from data.salient import CORRUPTIONS
from data.vocab import Vocabulary

Example = tuple[torch.Tensor, torch.Tensor]


class QuestionsWithReplay:
    """`make_example(epoch, item)` for a ShardedExampleStream of `num_items` per epoch: items below
    len(questions) are the questions, the rest replayed documents."""

    def __init__(self, questions: Sequence[Example], corpus: DocumentCorpus, vocab: Vocabulary, block_size: int,
                 seed: int, replay: float, masking: str = "random") -> None:
        if not 0.0 < replay < 1.0:
            raise ValueError(f"replay {replay} needs 0 < r < 1")
        if len(questions) < 1 or len(corpus) < 1:
            raise ValueError("replay needs questions and documents")
        if masking not in CORRUPTIONS:
            raise ValueError(f"unknown masking {masking!r}")
        self.questions = questions
        self.corpus = corpus
        self.vocab = vocab
        self.block_size = block_size
        self.seed = seed
        self.corrupt = CORRUPTIONS[masking]
        self.replayed_per_epoch = max(1, round(len(questions) * replay / (1.0 - replay)))
        self.num_items = len(questions) + self.replayed_per_epoch

    def document_of(self, epoch: int, item: int) -> tuple[int, int]:
        """(pass over the corpus, document) that replay item `item` of `epoch` shows."""
        slot = epoch * self.replayed_per_epoch + item - len(self.questions)
        return divmod(slot, len(self.corpus))

    def __call__(self, epoch: int, item: int) -> Example:
        if item < len(self.questions):
            return self.questions[item]
        corpus_pass, document = self.document_of(epoch, item)
        # a generator of its own (negative passes), apart from the pretraining stream's (seed, epoch, document)
        rng = example_rng(self.seed, -1 - corpus_pass, document)
        text, _ = self.corrupt(self.corpus.document(document), self.block_size, rng)
        return shift_pair(self.vocab.encode(text))
