"""Baseline process: SPEC's reference training loop on one process, tokens per second per step.

`python -m bench.reference_train CORPUS --steps N` prints one JSON line with the seconds of every
step. Data comes through a torch DataLoader over the in-memory corpus, shuffled, as the reference
does it; the learning rate follows SPEC's token schedule, set by hand every step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.reference_gpt import ReferenceGPT
from data.corruption import CharCorruptionDataset
from launcher.schedule import lr_multiplier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    dataset = CharCorruptionDataset(args.corpus.read_text(encoding="utf-8"), block_size=128)
    model = ReferenceGPT(len(dataset.vocab), 128, n_layer=4, n_head=8, n_embd=256, pdrop=0.1)
    optimizer = model.configure_optimizers(6e-3, (0.9, 0.95), 0.1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True)
    final_tokens = 200 * len(dataset) * 128
    tokens, seconds = 0, []
    model.train()
    last = time.perf_counter()
    while len(seconds) < args.steps:
        for x, y in loader:  # the reference's per-epoch loop; each step's time includes its data
            _, loss = model(x, y)
            model.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            tokens += int((y >= 0).sum())
            for group in optimizer.param_groups:
                group["lr"] = 6e-3 * lr_multiplier(tokens, 512 * 20, final_tokens)
            now = time.perf_counter()
            seconds.append(now - last)
            last = now
            if len(seconds) == args.steps:
                break
    print(json.dumps({"seconds": seconds, "tokens_per_step": args.batch * 127, "loss": loss.item()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
