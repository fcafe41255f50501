"""Paths and a minimal pipeline file shared by the config tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[3]
CASES = ROOT / "tests" / "cases" / "config"
EXAMPLE = ROOT / "examples" / "dataplump.yaml"

MINIMAL = """\
pipeline: {name: shop}
source: {url: "sqlite:///demo.db"}
tables:
  orders: {primary_key: id}
"""


def write(folder: Path, text: str, name: str = "dataplump.yaml") -> Path:
    """Write a pipeline file and return its path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
