"""`python -m data.prepare CORPUS OUT_DIR`: a corpus file (or shard directory) -> shards + vocabulary.

OUT_DIR receives `shard-NNNNN.txt` (non-empty documents only, one per line), `vocab.json`,
`index.npy` (each document's byte offset within its shard, memory-mapped by the loader) and
`manifest.json`. The corpus is streamed; memory does not grow with its size.
"""

from __future__ import annotations

import argparse
import json
import sys
from array import array
from pathlib import Path

import numpy as np

from data.atomic import atomic_directory
from data.corpus import INDEX_FILE, MANIFEST_FILE, VOCAB_FILE, open_corpus
from data.errors import DataError


def prepare_corpus(source: str | Path, out_dir: str | Path, shard_bytes: int, overwrite: bool = False) -> dict:
    """Validate and shard a corpus; returns the manifest."""
    corpus, vocab = open_corpus(source)  # rejects PAD / MASK with file:line
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        offsets = array("Q")
        shard_starts: list[int] = []
        shard = None
        written = 0
        for document in corpus:
            encoded = (document + "\n").encode("utf-8")
            if shard is None or written + len(encoded) > shard_bytes and written > 0:
                if shard is not None:
                    shard.close()
                shard = open(staging / f"shard-{len(shard_starts):05d}.txt", "wb")
                shard_starts.append(len(offsets))
                written = 0
            offsets.append(written)
            shard.write(encoded)
            written += len(encoded)
        shard.close()
        np.save(staging / INDEX_FILE, np.frombuffer(offsets, dtype=np.uint64))
        vocab.save(staging / VOCAB_FILE)
        shards = sorted(staging.glob("shard-*.txt"))
        manifest = {
            "source": str(source),
            "documents": len(offsets),
            "vocab_size": len(vocab),
            "shards": [[p.name, p.stat().st_size] for p in shards],
            "shard_starts": shard_starts,
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="a text file, one document per line, or a directory of *.txt shards")
    parser.add_argument("out_dir", help="directory to create with shards, vocab.json, index.npy, manifest.json")
    parser.add_argument("--shard-mb", type=float, default=64.0, help="largest shard size in MB (default 64)")
    parser.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    args = parser.parse_args(argv)
    if args.shard_mb <= 0:
        parser.error("--shard-mb must be positive")
    try:
        manifest = prepare_corpus(args.corpus, args.out_dir, int(args.shard_mb * 1e6), args.force)
    except (DataError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.out_dir}: {manifest['documents']} documents in {len(manifest['shards'])} shard(s), "
        f"vocabulary of {manifest['vocab_size']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
