"""The Python example in docs/sources.md runs as written (on SQLite, in a temp folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[3] / "docs" / "sources.md"


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)[:1]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(example, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["alerts"] == []
