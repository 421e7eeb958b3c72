"""Shared test fixtures: where the real data lives, and small corpora written to tmp_path."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("SPANGPT_REAL_DATA", ROOT.parent / "shared" / "data" / "birthplaces"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/birthplaces, or a skip that says where the files were looked for."""
    if not (REAL_DATA / "wiki.txt").is_file():
        pytest.skip(f"real data absent: no wiki.txt under {REAL_DATA} (set SPANGPT_REAL_DATA)")
    return REAL_DATA


def random_documents(count: int, seed: int = 0, min_len: int = 5, max_len: int = 150) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ.,"
    return [
        f"doc{i} " + "".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len))).strip()
        for i in range(count)
    ]


@pytest.fixture
def small_corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    """A 103-document corpus file with empty lines sprinkled in (which are not documents)."""
    documents = random_documents(103)
    lines = []
    for i, doc in enumerate(documents):
        lines.append(doc)
        if i % 17 == 0:
            lines.append("")
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, documents


def run_module(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python -m module args` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
