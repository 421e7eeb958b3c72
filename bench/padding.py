"""`python -m bench.padding [DATA_DIR]`: the share of positions the loaders cut as all-PAD columns.

DATA_DIR defaults to the real data (bench.common.REAL_DATA: datasets/birthplaces or $SPANGPT_REAL_DATA).

Rank 0 of 2 at SPEC's batches (pretraining micro-batch 64, finetuning 128), 200 micro-batches each.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.common import REAL_DATA
from data.loader import InStepLoader
from data.names import NameDataset
from data.stream import ShardedDocumentStream, ShardedExampleStream
from data.corpus import open_corpus


def main(argv: list[str]) -> int:
    data = Path(argv[0]) if argv else REAL_DATA
    corpus, vocab = open_corpus(data / "wiki.txt")
    names = NameDataset(vocab, (data / "birth_places_train.tsv").read_text(encoding="utf-8"), block_size=128)
    streams = {"pretraining, micro-batch 64": ShardedDocumentStream(corpus, vocab, 128, 64, 0, 2),
               "finetuning, micro-batch 128": ShardedExampleStream(len(names), lambda _e, i: names[i], 128, 0, 2)}
    for name, stream in streams.items():
        loader = InStepLoader(stream)
        widths = [loader.next_micro_batch()[1].shape[1] for _ in range(200)]
        mean = sum(widths) / len(widths)
        print(f"{name}: mean width {mean:.1f} of 127 positions, {100 * (1 - mean / 127):.0f}% cut")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
