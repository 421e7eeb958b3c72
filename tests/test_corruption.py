"""Span corruption and birth-place examples, checked against SPEC on the real data."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from data.corruption import CharCorruptionDataset
from data.names import NameDataset
from data.vocab import MASK, PAD

BLOCK = 128


@pytest.fixture(scope="module")
def wiki_dataset(real_data):
    text = (real_data / "wiki.txt").read_text(encoding="utf-8")
    return CharCorruptionDataset(text, BLOCK)


@pytest.fixture(scope="module")
def samples(wiki_dataset):
    """(document, x, y) for every document in each of 3 epochs: 8,811 examples."""
    out = []
    for epoch in range(3):
        wiki_dataset.set_epoch(epoch)
        for i in range(len(wiki_dataset)):
            x, y = wiki_dataset[i]
            out.append((wiki_dataset.documents[i], x, y))
    wiki_dataset.set_epoch(0)
    return out


def split_example(dataset, x: torch.Tensor, y: torch.Tensor) -> tuple[str, str, str, str]:
    """(prefix, suffix, masked, padding) of the full block_size string x + y[-1]."""
    full = dataset.vocab.decode(x.tolist()) + dataset.itos[int(y[-1])]
    content = full.rstrip(PAD)
    prefix, suffix, masked = content.split(MASK)
    return prefix, suffix, masked, full[len(content) :]


def test_format_and_shift(wiki_dataset, samples):
    for document, x, y in samples:
        assert x.shape == y.shape == (BLOCK - 1,) and x.dtype == y.dtype == torch.long
        assert torch.equal(x[1:], y[:-1])  # y is x shifted by one character
        full = wiki_dataset.vocab.decode(x.tolist()) + wiki_dataset.itos[int(y[-1])]
        assert len(full) == BLOCK and full.count(MASK) == 2
        prefix, suffix, masked, padding = split_example(wiki_dataset, x, y)
        assert set(padding) <= {PAD} and len(padding) >= BLOCK - 2 - int(BLOCK * 7 / 8)
        assert document.startswith(prefix + masked + suffix)  # the cut pieces reassemble the truncation


def test_every_truncation_length_is_reachable(wiki_dataset, samples):
    lengths = Counter()
    for document, x, y in samples:
        prefix, suffix, masked, _ = split_example(wiki_dataset, x, y)
        n = len(prefix) + len(masked) + len(suffix)
        assert 1 <= n <= int(BLOCK * 7 / 8)
        if len(document) >= int(BLOCK * 7 / 8):  # long documents reveal L itself
            lengths[n] += 1
    assert set(lengths) == set(range(4, 113))


def test_masked_length_averages_a_quarter(wiki_dataset, samples):
    masked_lengths, quarters = [], []
    shorter = longer = 0
    for _, x, y in samples:
        prefix, suffix, masked, _ = split_example(wiki_dataset, x, y)
        n = len(prefix) + len(masked) + len(suffix)
        masked_lengths.append(len(masked))
        quarters.append(n / 4)
        shorter += len(masked) < n / 4
        longer += len(masked) > n / 4
    ratio = sum(masked_lengths) / sum(quarters)
    assert 0.9 <= ratio <= 1.1, ratio
    assert shorter > len(samples) / 4 and longer > len(samples) / 4


def test_corruption_is_a_function_of_seed_epoch_and_document(real_data):
    text = (real_data / "wiki.txt").read_text(encoding="utf-8")
    a, b = CharCorruptionDataset(text, BLOCK, seed=3), CharCorruptionDataset(text, BLOCK, seed=3)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(50))
    b.set_epoch(1)
    assert sum(torch.equal(a[i][0], b[i][0]) for i in range(50)) < 5


def test_empty_documents_are_skipped():
    dataset = CharCorruptionDataset("first doc\n\n\nsecond doc\n", 32)
    assert dataset.documents == ["first doc", "second doc"] and len(dataset) == 2


def test_name_dataset_alignment_on_real_lines(real_data, wiki_dataset):
    lines = (real_data / "birth_places_train.tsv").read_text(encoding="utf-8").splitlines()
    names = NameDataset(wiki_dataset, "\n".join(lines) + "\n", source="birth_places_train.tsv")
    assert len(names) == 2000
    for i, line in enumerate(lines):
        question, place = line.split("\t")
        x, y = names[i]
        assert x.shape == y.shape == (BLOCK - 1,)
        s = question + MASK + place + MASK
        s = s + PAD * (BLOCK - len(s))
        assert names.vocab.decode(x.tolist()) == s[:-1]
        assert y[: len(question) - 1].eq(0).all()  # the question is not predicted
        assert names.vocab.decode(y[len(question) - 1 :].tolist()) == s[len(question) :]
        # The loss covers exactly ⁇place⁇ (pads are ignored): position len(q)-1 predicts the first ⁇.
        covered = names.vocab.decode(y[y != 0].tolist())
        assert covered == MASK + place + MASK
