"""Build transforms from step lists and pipeline configs written as Python data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from dataplump.config import PipelineConfig
from dataplump.engine import TableTransform, TransformResult, parse_steps


def transform(*steps: dict[str, Any], primary_key: tuple[str, ...] = ("id",)) -> TableTransform:
    """A transform of table `orders` with ``steps`` (which must parse)."""
    parsed, problems = parse_steps(list(steps), None)
    assert not problems, problems
    return TableTransform("orders", parsed, primary_key=primary_key)


def apply(batch: pa.Table, *steps: dict[str, Any]) -> TransformResult:
    """Run ``steps`` on ``batch``."""
    return transform(*steps).apply(batch)


def pipeline(base: Path, steps: list[dict[str, Any]], **transform: Any) -> PipelineConfig:
    """A pipeline config with table `orders` (contract below) validated from ``base``."""
    data = {
        "pipeline": {"name": "shop"},
        "source": {"url": f"sqlite:///{base / 'source.db'}"},
        "tables": {
            "orders": {
                "primary_key": "id",
                "contract": {
                    "columns": {
                        "id": "int64",
                        "customer_id": "int64",
                        "status": "string",
                        "amount": "decimal(10,2)",
                    }
                },
            }
        },
        "transform": {"steps": {"orders": steps}, **transform},
    }
    return PipelineConfig.model_validate(data, context={"base_dir": base})
