"""Batched greedy generation equals SPEC's one-question loop, token for token."""

from __future__ import annotations

import random

import pytest
import torch

from data.synthetic import build_world, question
from data.names import NameDataset
from data.vocab import MASK, Vocabulary
from model import GPT, VARIANTS
from models import small_config
from model.generate import generate, generate_plain


def random_prompts(count: int, vocab_size: int, max_len: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(vocab_size) for _ in range(rng.randint(1, max_len))] for _ in range(count)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("block_size", [16, 64])
def test_random_weights(variant, block_size):
    """At block 16 rows outgrow the context mid-generation, so cropping is exercised too."""
    torch.manual_seed(0)
    model = GPT(small_config(variant, vocab_size=30, block_size=block_size, n_layer=3, n_head=4, n_embd=48, bottleneck_dim=8))
    prompts = random_prompts(11, 30, 14)
    expected = [generate_plain(model, p, 20) for p in prompts]
    assert generate(model, prompts, 20) == expected
    assert generate(model, prompts, 20, use_cache=False) == expected
    assert len({tuple(e) for e in expected}) > 3  # the check is not vacuous


@pytest.fixture(scope="module")
def trained_models():
    """Each variant trained briefly on synthetic birth-place questions, so argmax is not noise."""
    train, dev, _ = build_world(seed=1, train=300, dev=24, test=0, places=12)
    corpus = "\n".join(p.biography for p in train + dev)
    vocab = Vocabulary.from_text(corpus + "".join(question(p) for p in train + dev))
    tsv = "".join(f"{question(p)}\t{p.place}\n" for p in train)
    names = NameDataset(vocab, tsv, block_size=64)
    x = torch.stack([names[i][0] for i in range(len(names))])
    y = torch.stack([names[i][1] for i in range(len(names))])
    models = {}
    for variant in VARIANTS:
        torch.manual_seed(0)
        model = GPT(small_config(variant, vocab_size=len(vocab), block_size=64, n_layer=2, n_head=4, n_embd=64, bottleneck_dim=16))
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(60):
            rows = torch.randint(0, len(x), (32,))
            _, loss = model(x[rows], y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        models[variant] = model
    prompts = [vocab.encode(question(p) + MASK).tolist() for p in dev + train[:16]]
    return models, prompts, vocab


@pytest.mark.parametrize("variant", VARIANTS)
def test_briefly_trained_weights(variant, trained_models):
    models, prompts, vocab = trained_models
    model = models[variant]
    expected = [generate_plain(model, p, 32) for p in prompts]
    assert generate(model, prompts, 32) == expected
    # The trained model answers in the format: a place and a closing MASK.
    assert sum(vocab.mask_id in e for e in expected) > len(expected) / 2
    # With a stop token each row ends at its first MASK, a prefix of the full continuation.
    stopped = generate(model, prompts, 32, stop_id=vocab.mask_id)
    for full, short in zip(expected, stopped):
        end = full.index(vocab.mask_id) + 1 if vocab.mask_id in full else len(full)
        assert short == full[:end]


def test_generation_restores_training_mode():
    model = GPT(small_config(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16))
    model.train()
    generate(model, [[1, 2, 3]], 4)
    assert model.training
