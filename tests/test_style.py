"""STYLE.md's habits that a tool can check: `ruff check` (rules in pyproject.toml) finds nothing."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_code_is_ruff_clean():
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip(f"no pyproject.toml (the ruff settings) in {ROOT}")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
