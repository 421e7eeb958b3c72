"""Greedy decoding: SPEC's plain loop, and a batched equivalent that gives identical tokens.

The batched generator right-pads prompts of different lengths. Every variant is causal, so the
logits at a row's last real position never see the padding after it; positions stay absolute from
0 exactly as in the plain loop. Vanilla and rope decode one token per step against a key/value
cache; once a row outgrows the context (the plain loop then crops and shifts positions, which
invalidates cached keys) and for the synthesizer and perceiver, each step recomputes the window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from model.gpt import GPT
from model.kv_cache import KVCache


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Dropout off for decoding, and the caller's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def generate_plain(model: GPT, prompt: Sequence[int], steps: int) -> list[int]:
    """SPEC's loop: one prompt, a full forward every step, context cropped, argmax."""
    context = model.config.context_length
    device = next(model.parameters()).device
    x = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    with evaluation_mode(model):
        for _ in range(steps):
            logits, _ = model(x[:, -context:])
            x = torch.cat([x, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return x[0, len(prompt) :].tolist()


class _Batch:
    """Right-padded token buffer of the rows still decoding, with their current lengths."""

    def __init__(self, prompts: Sequence[Sequence[int]], steps: int, device: torch.device) -> None:
        width = max(len(p) for p in prompts) + steps
        self.tokens = torch.zeros(len(prompts), width, dtype=torch.long, device=device)
        for row, prompt in enumerate(prompts):
            self.tokens[row, : len(prompt)] = torch.tensor(list(prompt), dtype=torch.long)
        self.lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=device)
        self.rows = torch.arange(len(prompts), device=device)  # original row of each live row

    def append(self, token: torch.Tensor) -> None:
        self.tokens[torch.arange(len(token), device=token.device), self.lengths] = token
        self.lengths += 1

    def keep(self, live: torch.Tensor) -> None:
        self.tokens, self.lengths, self.rows = self.tokens[live], self.lengths[live], self.rows[live]

    def windows(self, context: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's last `context` tokens, left-aligned, and the index of its last real one."""
        start = (self.lengths - context).clamp(min=0)
        width = int(self.lengths.max().clamp(max=context))
        index = start[:, None] + torch.arange(width, device=start.device)
        return self.tokens.gather(1, index), self.lengths - start - 1


def generate(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    steps: int,
    stop_id: int | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Greedy continuations of `prompts`, equal to `generate_plain` on each prompt.

    With `stop_id`, a row stops after emitting it (the evaluation needs nothing after the closing
    ⁇), and finished rows leave the batch; its continuation then ends with stop_id.
    """
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    device = next(model.parameters()).device
    context = model.config.context_length
    batch = _Batch(prompts, steps, device)
    out: list[list[int]] = [[] for _ in prompts]
    cache: KVCache | None = None
    with evaluation_mode(model):
        for step in range(steps):
            cacheable = use_cache and model.supports_kv_cache and int(batch.lengths.max()) <= context
            if not cacheable:
                cache = None
                idx, last = batch.windows(context)
                logits, _ = model(idx)
            elif cache is None:  # prefill: absolute positions 0.. for every row
                cache = new_cache(model, len(batch.lengths), context)
                width = int(batch.lengths.max())
                positions = torch.arange(width, device=device).expand(len(batch.lengths), width)
                logits, _ = model(batch.tokens[:, :width], positions=positions, cache=cache)
                last = batch.lengths - 1
            else:
                positions = (batch.lengths - 1)[:, None]
                idx = batch.tokens.gather(1, positions)
                logits, _ = model(idx, positions=positions, cache=cache)
                last = torch.zeros_like(batch.lengths)
            token = logits[torch.arange(len(last), device=device), last].argmax(-1)
            batch.append(token)
            for row, value in zip(batch.rows.tolist(), token.tolist()):
                out[row].append(value)
            if stop_id is not None:
                live = token != stop_id
                if not live.all():
                    if not live.any():
                        break
                    batch.keep(live)
                    if cache is not None:
                        cache.keep_rows(live)
    return out


def new_cache(model: GPT, batch: int, capacity: int) -> KVCache:
    config = model.config
    like = next(model.parameters())  # the cache takes the model's dtype and device
    return KVCache(config.n_layer, batch, config.n_head, capacity, config.head_size, like)
