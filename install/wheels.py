"""`make wheels WHEELS=dir` (`python -m install.wheels DIR`): everything spangpt needs besides torch, as wheels.

Run on a machine with a network and spangpt's environment (make setup). A GPU cluster's nodes often
have their own torch and no network; `make setup-offline WHEELS=dir` (install/offline.py) then installs
these next to that torch without a download. The wheels are the versions installed here, where the
suite passes: the closure of spangpt's requirements (with the test extra) walked through the installed
distributions, torch and what only torch needs left out. DeepSpeed is published as a source
distribution only; its wheel is built here, pure Python (no op is compiled ahead: DeepSpeed builds
what it needs on first use). Compiled packages (pydantic's core, numpy, ...) come as wheels for this
interpreter and for each `--python` version asked for (manylinux x86-64), so one folder serves this
machine and, say, a GPU image's Python 3.12. pyproject's build-system requirements (setuptools,
pinned to the version installed here) always go in, `--only` too: the offline install builds
spangpt's editable install with them where the target environment has no setuptools that will do.

    python -m install.wheels wheels --python 3.12
    python -m install.wheels .whl --python 3.12 --only deepspeed pydantic pydantic-core annotated-types \\
        typing-inspection typing-extensions hjson     # what this workplace's GPU image lacks
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

PROG = "python -m install.wheels"
PROJECT = "spangpt"
LEFT_OUT = {"torch"}  # the cluster's own build; what only torch needs goes with it
ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "linux_x86_64"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(distribution: str, extras: set[str]) -> list[str]:
    """Names of the installed distribution's requirements that apply here with `extras`."""
    from packaging.requirements import Requirement

    names = []
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
        if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
            names.append(canonical(requirement.name))
    return names


def closure(roots: list[str], extras: set[str]) -> dict[str, str]:
    """{name: installed version} of `roots` and everything they need, torch's subtree left out."""
    found: dict[str, str] = {}
    pending = [(root, extras if root == PROJECT else set()) for root in roots]
    while pending:
        name, wanted = pending.pop()
        if name in LEFT_OUT or (name in found and not wanted):
            continue
        version = installed_version(name)
        if name != PROJECT:
            found[name] = version
        pending.extend((child, set()) for child in requirement_names(name, wanted) if child not in found)
    return found


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"error: pip {' '.join(args[:2])} ... failed: {last}")


def build_requirements() -> list[str]:
    """pyproject.toml's build-system requirements, each pinned to the version installed here where that
    satisfies it (else as written: the newest that does). The offline install builds spangpt's editable
    install with them where the target environment lacks them, so the folder always holds them."""
    import tomllib

    from packaging.requirements import Requirement

    with open(ROOT / "pyproject.toml", "rb") as f:
        requires = list(tomllib.load(f)["build-system"]["requires"])
    pinned = []
    for line in requires:
        requirement = Requirement(line)
        try:
            here = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            here = None
        satisfied = here is not None and requirement.specifier.contains(here, prereleases=True)
        pinned.append(f"{canonical(requirement.name)}=={here}" if satisfied else line)
    return pinned


def with_build_requirements(pinned: list[str]) -> list[str]:
    """`pinned` and the build requirements it does not already name."""
    from packaging.requirements import Requirement

    named = {canonical(Requirement(p).name) for p in pinned}
    return pinned + [b for b in build_requirements() if canonical(Requirement(b).name) not in named]


def collect(directory: Path, pythons: list[str], only: list[str] | None) -> list[str]:
    """Build DeepSpeed's wheel and download the others for this interpreter and each of `pythons`: the
    closure of spangpt's requirements, or `only` those, and in either case the build requirements."""
    if only:
        pinned = [f"{canonical(name)}=={installed_version(canonical(name))}" for name in dict.fromkeys(only)]
    else:
        wanted = closure([PROJECT], {"test"})
        pinned = [f"{name}=={version}" for name, version in sorted(wanted.items())]
    pinned = with_build_requirements(pinned)
    directory.mkdir(parents=True, exist_ok=True)
    built = [p for p in pinned if p.startswith("deepspeed==")]
    downloaded = [p for p in pinned if not p.startswith("deepspeed==")]
    if built:  # an sdist: built against this environment's torch, without isolation (which would fetch torch)
        pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(directory), *built)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    for python in dict.fromkeys([here, *pythons]):
        if downloaded:
            pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", python,
                "--implementation", "cp", *platforms, "--dest", str(directory), *downloaded)
    return pinned


def installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"error: {name} is not installed here: run make setup first (the wheels are "
                         f"the versions this environment runs)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("directory", type=Path, help="where the wheels go (created)")
    parser.add_argument("--python", dest="pythons", action="append", default=[], metavar="X.Y",
                        help="also fetch compiled wheels for this CPython version (repeatable)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="exactly these distributions (what a target lacks), not the closure of spangpt's requirements")
    args = parser.parse_args(argv)
    for python in args.pythons:
        if not re.fullmatch(r"3\.\d+", python):
            parser.error(f"--python: expected a CPython version such as 3.12 (got {python!r})")
    pinned = collect(args.directory, args.pythons, args.only)
    wheels = sorted(p.name for p in args.directory.glob("*.whl"))
    print(f"{len(wheels)} wheels in {args.directory} for {len(pinned)} requirements: {' '.join(pinned)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
