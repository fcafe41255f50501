"""The bench harness run from a test: a real subprocess in the project root, the docs
left alone, its JSON written to the test's own folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MARKS = [
    pytest.mark.integration,
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(480),  # the first run installs the bench env (uv, from PyPI)
]
"""Every bench test's marks: it needs PostgreSQL and a broker, and may install peers."""


def run_bench(
    results: Path, *args: str, module: str = "bench", env: dict[str, str] | None = None
) -> str:
    """Run ``python -m <module> <args> --results <results>``; its stdout, once it succeeded."""
    run = subprocess.run(
        [sys.executable, "-m", module, *args, "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=450, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout
