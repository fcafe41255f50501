"""`table` references read by Spark's JDBC source from a SQLite file and the real
PostgreSQL server, joined by a SQL step: the same rows as the DuckDB engine."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dataplump.config import PipelineConfig
from dataplump.engine import ReferenceLoadError, ReferenceTables, TableTransform
from dataplump.engine.spark.references import SparkReferences, jdbc_packages, jdbc_url
from dataplump.engine.spark.transform import SparkTableTransform
from tests.unit.engine.spark.parity import assert_same

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JOIN = (
    "SELECT o.*, c.name, c.credit, c.since FROM batch o"
    " LEFT JOIN customers c ON c.id = o.customer_id WHERE o.id <> 4"
)
BATCH = pa.table({"id": [1, 2, 3, 4, 5], "customer_id": [10, 20, 30, 10, None]})


def config(url: str, references: dict[str, Any]) -> PipelineConfig:
    data = {
        "pipeline": {"name": "shop"},
        "source": {"url": url},
        "tables": {"orders": {"primary_key": "id"}, "customers": {"primary_key": "id"}},
        "transform": {"references": references, "steps": {"orders": [{"sql": JOIN}]}},
    }
    return PipelineConfig.model_validate(data)


@pytest.fixture(params=["postgres", "sqlite"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, sa.Engine]]:
    url: str = request.getfixturevalue(
        "postgres_url" if request.param == "postgres" else "sqlite_url"
    )
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT,"
                " credit NUMERIC(8,2), since DATE)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO customers VALUES (10, 'Ada', 1.50, '2020-01-02'),"
                " (20, 'Bob', NULL, NULL)"
            )
        )
    yield url, engine
    engine.dispose()


def test_table_reference_over_jdbc_joins_like_duckdb(
    spark: SparkSession, database: tuple[str, sa.Engine], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = database
    cfg = config(url, {"customers": {"table": "customers"}})
    duck = TableTransform.from_config(cfg, "orders", ReferenceTables(cfg))
    expected = duck.apply(BATCH)
    duck.close()
    caplog.set_level(logging.DEBUG, logger="dataplump")
    references = SparkReferences(spark, cfg, broadcast_rows=10)
    transform = SparkTableTransform.from_config(spark, cfg, "orders", references)
    actual = transform.apply(spark.createDataFrame(BATCH))
    assert references.rows("customers") == 2
    assert actual.output.toArrow()["name"].to_pylist() == ["Ada", "Bob", None, None]
    assert actual.filtered == {"1:sql": 1}
    assert_same(expected, actual)
    password = sa.make_url(url).password
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("dataplump")]
    assert any("reference `customers` loaded into Spark: 2 rows" in m for m in messages)
    if password:
        assert not [m for m in messages if str(password) in m]
    references.unpersist()


def test_jdbc_urls_and_packages(sqlite_url: str) -> None:
    cfg = config(
        "postgresql+psycopg://ann:s3cret@db.example:5433/shop?sslmode=require",
        {"customers": {"table": "customers"}},
    )
    jdbc = jdbc_url(cfg.source)
    assert jdbc.url == "jdbc:postgresql://db.example:5433/shop?sslmode=require"
    assert dict(jdbc.options) == {"user": "ann", "password": "s3cret"}
    assert jdbc_packages(cfg) == ["org.postgresql:postgresql:42.7.14"]
    maria = config("mysql+pymysql://u:p@127.0.0.1/shop", {"c": {"table": "customers"}})
    assert jdbc_url(maria.source).url == "jdbc:mariadb://127.0.0.1/shop"
    assert jdbc_packages(maria) == ["org.mariadb.jdbc:mariadb-java-client:3.5.11"]
    lite = config(sqlite_url, {"c": {"table": "customers"}})
    assert jdbc_url(lite.source).url.startswith("jdbc:sqlite:/")
    assert jdbc_packages(config(sqlite_url, {})) == []
    socket = config("postgresql+psycopg://u:p@/shop?host=/run/pg", {"c": {"table": "c"}})
    with pytest.raises(ReferenceLoadError, match="over TCP"):
        jdbc_url(socket.source)


def test_unreachable_or_missing_tables_are_reference_errors(
    spark: SparkSession, sqlite_url: str
) -> None:
    sa.create_engine(sqlite_url).dispose()
    references = SparkReferences(spark, config(sqlite_url, {"customers": {"table": "nope"}}))
    with pytest.raises(ReferenceLoadError, match=r"reference `customers`: .*nope"):
        references["customers"]
    with pytest.raises(ReferenceLoadError, match=r"no reference `customer`; did you mean"):
        references.get_reference("customer")
