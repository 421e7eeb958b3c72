"""`make setup-offline WHEELS=dir` (`python -m install.offline --wheels DIR --venv .venv`): install
spangpt next to an existing torch, from wheels alone (install/wheels.py made them on a networked machine).

Run with the interpreter whose environment holds torch (a cluster's module, a GPU image's own
environment). A new virtual environment reads that environment's packages through a .pth file: torch
and whatever else it has are used, not copied, and spangpt's other requirements come from the wheel
folder, pip never touching the network (--no-index). `--system-site-packages` would not do: where the
torch interpreter is itself a virtual environment, it exposes the base interpreter's packages, not
torch's. Each problem is one line and a non-zero exit.

spangpt's editable install is built with pyproject's build-system requirements (setuptools). Where
the new environment already sees a setuptools that satisfies them (a GPU image has its own), pip
builds without isolation, with that one; otherwise in an isolated build environment filled from the
folder (make wheels always puts setuptools there). Before Python 3.12, venv's ensurepip puts its own
old setuptools (65.5 on 3.11) into the new environment, in front of the torch environment's: where
that one falls short and the torch environment's will do, it is removed first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
import warnings
from pathlib import Path

PROG = "python -m install.offline"
ROOT = Path(__file__).resolve().parents[1]
LINK = "spangpt-torch-environment.pth"
# Run by the new environment's Python: every copy of each build requirement (and of wheel) it sees,
# in sys.path order (the first is the one imported), and whether that copy satisfies the requirement.
PROBE = r"""
import importlib.metadata as metadata, json, os, sys
try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib
from pip._vendor.packaging.requirements import Requirement

with open(sys.argv[1], "rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
report = []
for line in [*requires, "wheel"]:
    requirement = Requirement(line)
    copies, seen = [], set()
    for dist in metadata.distributions(name=requirement.name):
        site = os.path.realpath(str(dist.locate_file("")))
        if site not in seen:
            seen.add(site)
            copies.append({"version": dist.version, "site": site,
                           "satisfies": requirement.specifier.contains(dist.version, prereleases=True)})
    report.append({"requirement": line, "name": requirement.name, "copies": copies})
print(json.dumps(report))
"""


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
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()] or ["no output"]
        errors = [line for line in lines if line.startswith("ERROR")]  # pip's, or its build subprocess's (indented)
        raise InstallError(f"{what} failed: {(errors or lines)[-1].removeprefix('ERROR: ')}")


def release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def build_plan(report: list[dict], own_site: str) -> tuple[dict[str, dict] | None, list[str]]:
    """From PROBE's report: the copy of each build requirement a build without isolation would use
    (None: build in isolation instead), and the names whose own copy in the new environment to remove first.

    Without isolation where each build requirement's first copy satisfies it, or where only the new
    environment's own copy stands in front of one that does (ensurepip's setuptools before Python 3.12).
    A setuptools older than 70.1 builds editable wheels with the `wheel` package, so that must be there too.
    """
    *requirements, wheel = report
    chosen, remove = {}, []
    for entry in requirements:
        copies = entry["copies"]
        if copies and copies[0]["satisfies"]:
            chosen[entry["name"]] = copies[0]
        elif copies and copies[0]["site"] == own_site and any(c["satisfies"] for c in copies[1:]):
            chosen[entry["name"]] = next(c for c in copies[1:] if c["satisfies"])
            remove.append(entry["name"])
        else:
            return None, []
    setuptools = chosen.get("setuptools")
    if setuptools is not None and release(setuptools["version"]) < (70, 1) and not wheel["copies"]:
        return None, []
    return chosen, remove


def wheel_names(directory: Path) -> set[str]:
    return {re.sub(r"[-_.]+", "-", p.name.split("-")[0]).lower() for p in directory.glob("*.whl")}


def build_options(python: Path, purelib: Path, environment: Path, wheels: Path) -> tuple[list[str], str]:
    """pip's options for building spangpt in `environment`, and how it builds, in words."""
    result = subprocess.run([str(python), "-c", PROBE, str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise InstallError(f"reading the build requirements in {environment} failed: {lines[-1]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    chosen, remove = build_plan(report, os.path.realpath(purelib))
    if chosen is not None:
        for name in remove:
            run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", name], f"removing {environment}'s own {name}")
        used = ", ".join(f"{name} {copy['version']} from {copy['site']}" for name, copy in chosen.items())
        return ["--no-build-isolation"], f"built without isolation, with {used}"
    present = wheel_names(wheels)
    missing = [e["requirement"] for e in report[:-1] if re.sub(r"[-_.]+", "-", e["name"]).lower() not in present]
    if missing:
        raise InstallError(f"WHEELS={wheels}: no {missing[0]} wheel to build spangpt with, and {environment} sees no "
                           f"{missing[0]} (remake the folder with make wheels: it adds the build requirements)")
    return [], f"built in isolation, with {', '.join(e['requirement'] for e in report[:-1])} from {wheels}"


def create(environment: Path, wheels: Path) -> str:
    site = torch_site()
    venv.EnvBuilder(with_pip=True, clear=False).create(environment)
    python = environment / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    version = sysconfig.get_python_version()
    if not purelib.endswith(f"python{version}/site-packages"):
        raise InstallError(f"{environment} is not a Python {version} environment: remove it, or name another VENV")
    (Path(purelib) / LINK).write_text(f"{site}\n", encoding="utf-8")
    options, how = build_options(python, Path(purelib), environment, wheels)
    run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels.resolve()),
         *options, "-e", f"{ROOT}[test]"], f"pip install from {wheels}")
    run([str(python), "-c", "import torch, deepspeed, pydantic, launcher.train"], "importing spangpt's requirements")
    run([str(python), "-m", "launcher.build_ops"], "building DeepSpeed's CPU op")
    (environment / ".installed").touch()
    return how


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, required=True, help="the folder make wheels filled")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="the environment to create")
    args = parser.parse_args(argv)
    try:
        check_wheels(args.wheels)
        how = create(args.venv, args.wheels)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.venv}: spangpt installed from {args.wheels}, with torch from {torch_site()} ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
