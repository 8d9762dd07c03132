"""The repository stays formatted and lint-clean with its one configured tool (ruff.toml):
`ruff format` and `ruff check` over every file, as `python -m ruff format .` leaves them."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff(*args):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_every_file_is_formatted():
    out = _ruff("format", "--check", ".")
    assert out.returncode == 0, f"run `python -m ruff format .`:\n{out.stdout}{out.stderr}"


def test_lint_is_clean():
    out = _ruff("check", ".")
    assert out.returncode == 0, f"run `python -m ruff check --fix .`:\n{out.stdout}{out.stderr}"
