"""`make setup-offline` refuses what it cannot install from with one line, before creating anything."""

from __future__ import annotations

import subprocess
import sys

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
