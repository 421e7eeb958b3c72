"""`make setup-offline WHEELS=dir` (`python -m install.offline --wheels DIR --venv .venv`): install
spangpt next to an existing torch, from wheels alone (install/wheels.py made them on a networked machine).

Run with the interpreter whose environment holds torch (a cluster's module, a GPU image's own
environment). A new virtual environment reads that environment's packages through a .pth file: torch
and whatever else it has are used, not copied, and spangpt's other requirements come from the wheel
folder, pip never touching the network (--no-index). `--system-site-packages` would not do: where the
torch interpreter is itself a virtual environment, it exposes the base interpreter's packages, not
torch's. Each problem is one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
import venv
import warnings
from pathlib import Path

PROG = "python -m install.offline"
ROOT = Path(__file__).resolve().parents[1]
LINK = "spangpt-torch-environment.pth"


class InstallError(Exception):
    """One line saying what is missing or what failed."""


def torch_site() -> Path:
    """The site-packages folder that holds this interpreter's torch."""
    try:
        with warnings.catch_warnings():  # torch warns where its environment has no numpy; the new one will
            warnings.simplefilter("ignore")
            import torch
    except ImportError:
        raise InstallError(f"{sys.executable} has no torch: run this with the Python that has it "
                           f"(make setup-offline PYTHON=...), or use make setup on a networked machine") from None
    return Path(torch.__file__).resolve().parents[1]


def check_wheels(directory: Path) -> None:
    if not directory.is_dir():
        raise InstallError(f"WHEELS={directory}: not a folder (make it with make wheels WHEELS={directory} on a "
                           f"networked machine)")
    if not any(directory.glob("deepspeed-*.whl")):
        raise InstallError(f"WHEELS={directory}: no DeepSpeed wheel in it (make wheels builds one)")


def run(command: list[str], what: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()] or ["no output"]
        errors = [line for line in lines if line.startswith("ERROR")]
        raise InstallError(f"{what} failed: {(errors or lines)[-1].removeprefix('ERROR: ')}")


def create(environment: Path, wheels: Path) -> None:
    site = torch_site()
    venv.EnvBuilder(with_pip=True, clear=False).create(environment)
    python = environment / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    version = sysconfig.get_python_version()
    if not purelib.endswith(f"python{version}/site-packages"):
        raise InstallError(f"{environment} is not a Python {version} environment: remove it, or name another VENV")
    (Path(purelib) / LINK).write_text(f"{site}\n", encoding="utf-8")
    run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels.resolve()),
         "-e", f"{ROOT}[test]"], f"pip install from {wheels}")
    run([str(python), "-c", "import torch, deepspeed, pydantic, launcher.train"], "importing spangpt's requirements")
    run([str(python), "-m", "launcher.build_ops"], "building DeepSpeed's CPU op")
    (environment / ".installed").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, required=True, help="the folder make wheels filled")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="the environment to create")
    args = parser.parse_args(argv)
    try:
        check_wheels(args.wheels)
        create(args.venv, args.wheels)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.venv}: spangpt installed from {args.wheels}, with torch from {torch_site()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
