"""Hostile identifiers end to end: column names with quotes, spaces, semicolons and SQL
(`x"; DROP TABLE y; --`) go from SQLite through Kafka to the Delta lake and a PostgreSQL
warehouse (in a schema named like SQL too) with `run --once`, every row is accounted for
exactly, and nothing else in the source database or the warehouse changes."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa

from tests.support.cli import run_command

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

TABLE = "ord-ers"  # a name that needs quoting in SQL (config keeps table names Kafka-safe)
PK = "o'id"
SQLCOL = 'x"; DROP TABLE y; --'
AMOUNT = "amount; DELETE FROM y"
CURSOR = 'up"dated at'
TEXT = 'we\'ird "name"'
RENAMED = "re\"named 'col'; --"
BYSTANDER = 'x"; DROP TABLE y; --'  # a table whose name is the SQL above
SCHEMA = 'cur"ated; DROP SCHEMA public CASCADE; --'  # the warehouse's schema


def q(name: str) -> str:
    """A SQLite identifier, quoted (only for the test's own setup SQL)."""
    return '"' + name.replace('"', '""') + '"'


def negative(i: int) -> bool:
    """Rows the contract's `min: 0` on the amount sends to the dead-letter store."""
    return i % 7 == 0


def bad_number(i: int) -> bool:
    """Rows whose SQL-named column the cast step cannot read (failed store)."""
    return i % 11 == 0 and not negative(i)


def row(i: int, version: int = 0) -> tuple[Any, ...]:
    return (
        i,
        "x" if i % 11 == 0 else str(i * 3),
        f"-{i}.25" if negative(i) else f"{i}.25",
        i + version * 1000,
        f'  it\'s "{i}"; v{version}  ',
    )


def add_rows(db: Path, rows: list[tuple[Any, ...]]) -> None:
    columns = ", ".join(q(c) for c in (PK, SQLCOL, AMOUNT, CURSOR, TEXT))
    with sqlite3.connect(db) as conn:
        conn.executemany(
            f"INSERT OR REPLACE INTO {q(TABLE)} ({columns}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
            rows,
        )


def everything_else(db: Path) -> dict[str, Any]:
    """The schema and every row of every table but the pipeline's."""
    with sqlite3.connect(db) as conn:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        rows = {
            name: sorted(conn.execute(f"SELECT * FROM {q(name)}").fetchall())  # noqa: S608
            for (kind, name, _) in schema
            if kind == "table" and name != TABLE
        }
    return {"schema": schema, "rows": rows}


def make(folder: Path, bootstrap: str, rows: int, warehouse: str) -> Path:
    db = folder / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"CREATE TABLE {q(TABLE)} ({q(PK)} INTEGER PRIMARY KEY, {q(SQLCOL)} TEXT,"
            f" {q(AMOUNT)} NUMERIC(10,2), {q(CURSOR)} INTEGER NOT NULL, {q(TEXT)} TEXT)"
        )
        conn.execute("CREATE TABLE y (id INTEGER PRIMARY KEY, what TEXT)")
        conn.executemany("INSERT INTO y VALUES (?, ?)", [(1, "keep"), (2, "me"), (3, "'; --")])
        conn.execute(f"CREATE TABLE {q(BYSTANDER)} ({q(SQLCOL)} TEXT)")
        conn.execute(f"INSERT INTO {q(BYSTANDER)} VALUES ('still here')")  # noqa: S608
    add_rows(db, [row(i) for i in range(1, rows + 1)])
    pipeline = {
        "pipeline": {"name": f"ids{uuid.uuid4().hex[:8]}"},
        "source": {"url": f"sqlite:///{db}"},
        "kafka": {"bootstrap_servers": bootstrap, "extra": {"session.timeout.ms": "6000"}},
        "sinks": {
            "lake": {"kind": "delta", "path": "lake"},
            "warehouse": {"kind": "postgres", "url": warehouse, "schema": SCHEMA},
        },
        "notify": {"grouping": {"group_wait": "0s"}},
        "tables": {
            TABLE: {
                "primary_key": PK,
                "mode": "incremental",
                "cursor": CURSOR,
                "lag_seconds": 0,
                "batch_size": 25,
                "contract": {
                    "columns": {
                        PK: {"type": "int64", "not_null": True, "unique": True},
                        AMOUNT: {"type": "decimal(10,2)", "min": 0},
                        SQLCOL: {"type": "string"},
                        TEXT: {"type": "string", "not_null": True},
                    }
                },
            }
        },
        "transform": {
            "steps": {
                TABLE: [
                    {"cast": {SQLCOL: "int32"}},
                    {"trim": [TEXT]},
                    {"rename": {TEXT: RENAMED}},
                ]
            }
        },
    }
    path = folder / "dataplump.yaml"
    path.write_text(json.dumps(pipeline, indent=2))  # JSON is YAML: no escaping doubts
    return path


def curated(folder: Path) -> pl.DataFrame:
    """The curated table, read by polars (not by DataPlump's reader)."""
    return pl.read_delta(str(folder / "lake" / TABLE))


def store_counts(folder: Path, store: str) -> int:
    path = folder / "lake" / store
    if not (path / "_delta_log").exists():
        return 0
    frame = pl.read_delta(str(path))
    return frame.filter(pl.col("table") == TABLE).height


def warehouse_rows(url: str) -> dict[int, str]:
    """Key -> renamed text in the warehouse's curated table, read with plain SQLAlchemy."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                f"SELECT {q(PK)}, {q(RENAMED)} FROM {q(SCHEMA)}.{q(TABLE)}"  # noqa: S608
            ).fetchall()
    finally:
        engine.dispose()
    return {int(k): v for k, v in found}


def warehouse_schemas(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_schema_names())
    finally:
        engine.dispose()


def expected(ids: range) -> set[int]:
    return {i for i in ids if not negative(i) and not bad_number(i)}


def test_hostile_column_names_go_end_to_end(
    tmp_path: Path, kafka_bootstrap: str, postgres_url: str
) -> None:
    rows = 120
    config = make(tmp_path, kafka_bootstrap, rows, postgres_url)
    db = tmp_path / "source.db"
    before = everything_else(db)
    logs = tmp_path / "logs"
    run = ("run", "-c", str(config), "--once", "--metrics-port", "0")

    done = run_command(*run, logs=logs, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.describe()
    lake = curated(tmp_path)
    assert {PK, SQLCOL, AMOUNT, CURSOR, RENAMED} <= set(lake.columns), lake.columns
    assert TEXT not in lake.columns
    assert sorted(lake[PK].to_list()) == sorted(expected(range(1, rows + 1)))
    assert lake.schema[SQLCOL] == pl.Int32
    first = lake.filter(pl.col(PK) == 1).row(0, named=True)
    assert first[RENAMED] == 'it\'s "1"; v0'
    assert first[SQLCOL] == 3
    assert str(first[AMOUNT]) == "1.25"
    assert store_counts(tmp_path, "_dlq") == sum(negative(i) for i in range(1, rows + 1))
    assert store_counts(tmp_path, "_failed") == sum(bad_number(i) for i in range(1, rows + 1))
    assert set(warehouse_rows(postgres_url)) == expected(range(1, rows + 1))
    assert "public" in warehouse_schemas(postgres_url)

    # a second run reads by the quoted cursor: new rows and changed rows, merged by the key
    add_rows(db, [row(i) for i in range(rows + 1, rows + 41)] + [row(2, 1), row(3, 1)])
    again = run_command(*run, logs=logs, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.describe()
    lake = curated(tmp_path)
    ids = lake[PK].to_list()
    assert len(ids) == len(set(ids))
    assert set(ids) == expected(range(1, rows + 41))
    changed = lake.filter(pl.col(PK).is_in([2, 3])).sort(PK)[RENAMED].to_list()
    assert changed == ['it\'s "2"; v1', 'it\'s "3"; v1']
    assert store_counts(tmp_path, "_dlq") == sum(negative(i) for i in range(1, rows + 41))
    warehouse = warehouse_rows(postgres_url)
    assert set(warehouse) == expected(range(1, rows + 41))
    assert (warehouse[2], warehouse[3]) == ('it\'s "2"; v1', 'it\'s "3"; v1')
    assert warehouse_schemas(postgres_url) == sorted(["information_schema", "public", SCHEMA])

    status = run_command("status", "-c", str(config), "--json", logs=logs, cwd=tmp_path)
    assert status.returncode == 0, status.describe()
    figures = json.loads(status.stdout)["tables"][TABLE]
    assert figures["read"] == rows + 40 + 2
    assert figures["gap"] == 0

    assert everything_else(db) == before  # `y` and the table named like SQL are untouched
    with sqlite3.connect(db) as conn:
        source = dict(conn.execute(f"SELECT {q(PK)}, {q(TEXT)} FROM {q(TABLE)}").fetchall())  # noqa: S608
    assert len(source) == rows + 40
    assert source[2] == row(2, 1)[4]


@pytest.mark.parametrize("name", [BYSTANDER, "a b", "o'rders", "x;y", "../../etc"])
def test_a_table_name_kafka_cannot_carry_is_refused(tmp_path: Path, name: str) -> None:
    """Table names become Kafka topic names: the config refuses others with the way out
    (a view), and writes nothing."""
    config = tmp_path / "dataplump.yaml"
    pipeline = {
        "pipeline": {"name": "ids"},
        "source": {"url": f"sqlite:///{tmp_path / 'source.db'}"},
        "sinks": {"lake": {"kind": "delta", "path": "lake"}},
        "tables": {name: {"primary_key": "id"}},
    }
    config.write_text(json.dumps(pipeline))
    logs = tmp_path / "logs"
    checked = run_command("config", "check", "-c", str(config), logs=logs, cwd=tmp_path)
    assert checked.returncode != 0, checked.describe()
    assert "becomes part of Kafka topic names" in checked.stdout + checked.stderr
    assert "through a view" in checked.stdout + checked.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataplump.yaml", "logs"]
