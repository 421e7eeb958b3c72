"""`make setup-offline` refuses what it cannot install from with one line, before creating anything; the
folder always holds the build requirements, used from the environment where it has them. docs/gpu.md's
`make wheels ... WHEEL_ONLY=...` line, installed beside a stand-in for the GPU image that has everything
else, is the runbook rehearsal's setup stage (tests/test_gpu_runbook.py, tests/gpu_image.py)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from launch import ROOT


def offline(python: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "install.offline", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_missing_wheel_folder_is_named(tmp_path):
    result = offline(sys.executable, "--wheels", str(tmp_path / "none"), "--venv", str(tmp_path / "env"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: WHEELS={tmp_path / 'none'}: not a folder (make it with make wheels WHEELS={tmp_path / 'none'} "
        "on a networked machine)"]
    (tmp_path / "empty").mkdir()
    result = offline(sys.executable, "--wheels", str(tmp_path / "empty"), "--venv", str(tmp_path / "env"))
    assert result.stderr.strip() == f"error: WHEELS={tmp_path / 'empty'}: no DeepSpeed wheel in it (make wheels builds one)"
    assert not (tmp_path / "env").exists()


def test_an_interpreter_without_torch_is_told_which_python_to_use(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "deepspeed-0.19.8-py3-none-any.whl").write_bytes(b"")
    result = offline(str(bare / "bin" / "python"), "--wheels", str(wheels), "--venv", str(tmp_path / "env"))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {bare / 'bin' / 'python'} has no torch: run this with the Python that has it")
    assert not (tmp_path / "env").exists()


# --- the build requirements: in the folder always, and used from the environment where they will do ---------


def test_the_wheel_folder_always_names_the_build_requirements_pinned_to_this_environment():
    from install.wheels import build_requirements, with_build_requirements

    here = f"setuptools=={version('setuptools')}"
    assert build_requirements() == [here]  # pyproject: setuptools>=68, which this environment's satisfies
    assert with_build_requirements(["deepspeed==0.19.8", "hjson==3.1.0"]) == ["deepspeed==0.19.8", "hjson==3.1.0", here]
    assert with_build_requirements(["setuptools==80.0.0"]) == ["setuptools==80.0.0"]  # the closure's own pin stands


def copies(*found: tuple[str, str, bool]) -> list[dict]:
    return [{"version": v, "site": site, "satisfies": ok} for v, site, ok in found]


def test_the_build_uses_the_environments_setuptools_where_it_satisfies_pyproject():
    from install.offline import build_plan

    own, torch_env = "/venv/lib/python3.11/site-packages", "/opt/torch/lib/python3.12/site-packages"
    report = lambda setuptools, wheel=(): [  # noqa: E731
        {"requirement": "setuptools>=68", "name": "setuptools", "copies": copies(*setuptools)},
        {"requirement": "wheel", "name": "wheel", "copies": copies(*wheel)}]
    image = ("80.9.0", torch_env, True)
    assert build_plan(report([image]), own) == ({"setuptools": copies(image)[0]}, [])  # Python 3.12: no own copy
    ensurepip = ("65.5.0", own, False)  # Python 3.11's venv puts its own in front of the torch environment's
    assert build_plan(report([ensurepip, image]), own) == ({"setuptools": copies(image)[0]}, ["setuptools"])
    assert build_plan(report([ensurepip]), own) == (None, [])  # nothing that will do: isolated, from the folder
    assert build_plan(report([("65.5.0", torch_env, False)]), own) == (None, [])
    assert build_plan(report([]), own) == (None, [])
    old = ("69.0.0", torch_env, True)  # before 70.1 setuptools builds editable wheels with the wheel package
    assert build_plan(report([old]), own) == (None, [])
    assert build_plan(report([old], [("0.45.0", torch_env, True)]), own)[0] is not None
