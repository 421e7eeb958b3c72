"""A stand-in for the lent GPU machine's image, and docs/gpu.md's `make wheels` line for it.

The image has its own torch and most of spangpt's requirements, but not DeepSpeed, pydantic and
what they alone need (docs/gpu.md's `WHEEL_ONLY` list, in its runbook section); nothing can be
downloaded there. So the stand-in is a virtual environment with torch and everything else at this
environment's versions, minus that list: what the documented line collects must be exactly what is
missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from launch import ROOT, check


def documented_wheel_line() -> tuple[list[str], list[str]]:
    """(WHEEL_PYTHONS, WHEEL_ONLY) of docs/gpu.md's `make wheels` line for the GPU image."""
    text = (ROOT / "docs" / "gpu.md").read_text(encoding="utf-8")
    [(pythons, only)] = re.findall(r'make wheels WHEELS=\S+ WHEEL_PYTHONS="?([\d. ]+?)"?\s+(?:\\\s*)?WHEEL_ONLY="([^"]+)"', text)
    return pythons.split(), only.split()


def image_environment(path: Path, left_out: set[str]) -> Path:
    """A stand-in for the GPU image: torch, and every other requirement of spangpt (its test extra and
    what DeepSpeed needs) at this environment's versions, except `left_out`; setuptools with them."""
    from install.wheels import canonical, closure

    left_out = {canonical(name) for name in left_out}
    pins = [f"{n}=={v}" for n, v in sorted(closure(["spangpt"], {"test"}).items()) if n not in left_out]
    pins += [] if any(p.startswith("setuptools==") for p in pins) else [f"setuptools=={version('setuptools')}"]
    check(subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True, text=True))
    check(subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", f"torch=={version('torch')}",
                          *pins], capture_output=True, text=True, timeout=900))
    return path / "bin" / "python"
