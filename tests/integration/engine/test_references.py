"""Reference tables from the real PostgreSQL server and from SQLite, Parquet and Delta
files: loaded once, joined by a SQL step, refreshed after their interval."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dataplump.config import PipelineConfig
from dataplump.engine import ReferenceLoadError, ReferenceTables, TableTransform

JOIN = (
    "SELECT o.*, c.name, c.credit FROM batch o LEFT JOIN customers c"
    " ON c.id = o.customer_id ORDER BY o.id"
)
BATCH = pa.table({"id": [1, 2, 3], "customer_id": [10, 20, 30]})


class Clock:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(url: str, references: dict[str, Any], base: Path | None = None) -> PipelineConfig:
    data = {
        "pipeline": {"name": "shop"},
        "source": {"url": url},
        "tables": {"orders": {"primary_key": "id"}, "customers": {"primary_key": "id"}},
        "transform": {"references": references, "steps": {"orders": [{"sql": JOIN}]}},
    }
    context = {"base_dir": base} if base is not None else None
    return PipelineConfig.model_validate(data, context=context)


@pytest.fixture(params=["postgres", "sqlite"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, sa.Engine]]:
    name = "postgres_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(name)
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, credit NUMERIC(8,2))"
            )
        )
        conn.execute(sa.text("INSERT INTO customers VALUES (10, 'Ada', 1.50), (20, 'Bob', 2.25)"))
    yield url, engine
    engine.dispose()


def test_table_reference_is_joined_and_refreshed(database: tuple[str, sa.Engine]) -> None:
    url, engine = database
    clock = Clock()
    cfg = config(url, {"customers": {"table": "customers", "refresh_seconds": 60}})
    references = ReferenceTables(cfg, clock=clock)
    transform = TableTransform.from_config(cfg, "orders", references)
    result = transform.apply(BATCH)
    assert result.output["name"].to_pylist() == ["Ada", "Bob", None]
    assert result.output["credit"].to_pylist() == [Decimal("1.50"), Decimal("2.25"), None]
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [0, 1, 2]
    loaded = references.loaded_at("customers")

    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO customers VALUES (30, 'Cy', 3.00)"))
    clock.now += 59
    assert transform.apply(BATCH).output["name"].to_pylist() == ["Ada", "Bob", None]  # cached
    assert references.loaded_at("customers") == loaded
    clock.now += 1
    assert transform.apply(BATCH).output["name"].to_pylist() == ["Ada", "Bob", "Cy"]
    assert references.loaded_at("customers") == clock.now

    with engine.begin() as conn:  # a failed refresh keeps the loaded copy serving
        conn.execute(sa.text("DROP TABLE customers"))
    clock.now += 60
    assert transform.apply(BATCH).output["name"].to_pylist() == ["Ada", "Bob", "Cy"]
    transform.close()


def test_reference_without_refresh_is_loaded_once(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(sa.text("INSERT INTO customers VALUES (10, 'Ada')"))
    clock = Clock()
    references = ReferenceTables(config(sqlite_url, {"c": {"table": "customers"}}), clock=clock)
    first = references.get("c")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO customers VALUES (20, 'Bob')"))
    clock.now += 10**6
    assert references.get("c") is first
    engine.dispose()


def test_table_reference_errors(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE other (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    cfg = config(sqlite_url, {"a": {"table": "nope"}, "b": {"table": "nope", "key": "id"}})
    references = ReferenceTables(cfg)
    with pytest.raises(ReferenceLoadError, match="table `nope` is not under `tables:`, so name"):
        references.get("a")
    with pytest.raises(ReferenceLoadError, match=r"reference `b`: .*table `nope` not found"):
        references.get("b")
    with pytest.raises(ReferenceLoadError, match=r"no reference `bb`; did you mean `b`\?"):
        references.get("bb")


def test_file_references(tmp_path: Path, sqlite_url: str) -> None:
    from deltalake import write_deltalake

    customers = pa.table(
        {
            "id": [10, 20],
            "name": ["Ada", "Bob"],
            "credit": pa.array([Decimal("1.50")] * 2, pa.decimal128(8, 2)),
        }
    )
    pq.write_table(customers, tmp_path / "c.parquet")
    write_deltalake(str(tmp_path / "c_delta"), customers)
    (tmp_path / "c.csv").write_text("id,name,credit\n10,Ada,1.50\n20,Bob,1.50\n")
    for kind, path in (("parquet", "c.parquet"), ("delta", "c_delta"), ("csv", "c.csv")):
        cfg = config(sqlite_url, {"customers": {kind: path}}, base=tmp_path)
        transform = TableTransform.from_config(cfg, "orders")
        output = transform.apply(BATCH).output
        assert output["name"].to_pylist() == ["Ada", "Bob", None], kind
        assert output.schema.field("name").type == pa.string(), kind
        transform.close()
