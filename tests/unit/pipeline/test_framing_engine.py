"""The Spark engine refuses ``kafka.topic.framing: arrow`` before it starts a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplump.config import load_config
from dataplump.errors import ConfigError
from dataplump.pipeline.transform import make_transformer


def test_engine_spark_over_a_framed_pipeline_is_refused_in_one_line(tmp_path: Path) -> None:
    file = tmp_path / "dataplump.yaml"
    file.write_text(
        "pipeline: {name: shop}\n"
        'source: {url: "sqlite:///demo.db"}\n'
        'kafka: {bootstrap_servers: "127.0.0.1:1", topic: {framing: arrow}}\n'
        "tables:\n  orders: {primary_key: id}\n"
    )
    config = load_config(file)  # the DuckDB engine: the file itself is fine
    with pytest.raises(ConfigError, match="the Spark engine reads one JSON record per row"):
        make_transformer(config, "127.0.0.1:1", engine="spark")
