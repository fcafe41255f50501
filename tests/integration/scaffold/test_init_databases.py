"""``dataplump init`` against real PostgreSQL and MariaDB, then the real stages on the result.

PostgreSQL: five tables in their own schema (foreign keys, a key of two columns, a text
key, a mixed-case table name, mixed-case and spaced column names, numeric, jsonb,
char(n), timestamptz and plain timestamp cursors), read by a login role made for the
test (its password appears in no
file). ``init`` writes the folder, ``config check --steps`` accepts it, and
``extract --once``, ``transform --once`` and ``load --once`` run as processes on the
session's Kafka: every source row ends in the Delta lake, none in a DLQ or failed topic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.scaffold import scaffold

pytestmark = [pytest.mark.integration]

runner = CliRunner()

COUNTS = {"customers": 40, "Products": 15, "orders": 120, "order_lines": 300, "events": 80}

PG_SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
  id bigint PRIMARY KEY,
  "Full Name" text NOT NULL,
  email text,
  country char(2) NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE TABLE shop."Products" (
  sku text PRIMARY KEY,
  title text NOT NULL,
  price numeric(10,2) NOT NULL,
  active boolean NOT NULL,
  meta jsonb
);
CREATE TABLE shop.orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES shop.customers (id),
  status text NOT NULL,
  total numeric(12,2),
  "updatedAt" timestamptz NOT NULL
);
CREATE TABLE shop.order_lines (
  order_id bigint NOT NULL REFERENCES shop.orders (id),
  line integer NOT NULL,
  sku text NOT NULL REFERENCES shop."Products" (sku),
  qty integer NOT NULL,
  PRIMARY KEY (order_id, line)
);
CREATE TABLE shop.events (
  event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text,
  payload json,
  modified_at timestamp NOT NULL,
  day date
);
"""


def fill_postgres(conn: sa.Connection) -> None:
    base = datetime(2024, 3, 1, tzinfo=UTC)
    conn.execute(
        sa.text("INSERT INTO shop.customers VALUES (:i, :n, :e, :c, :t)"),
        [
            {
                "i": i,
                "n": f"Customer {i}",
                "e": None if i % 4 == 0 else f"c{i}@example.com",
                "c": ["NO", "SE", "FI"][i % 3],
                "t": base + timedelta(hours=i),
            }
            for i in range(1, COUNTS["customers"] + 1)
        ],
    )
    conn.execute(
        sa.text('INSERT INTO shop."Products" VALUES (:s, :t, :p, :a, CAST(:m AS jsonb))'),
        [
            {
                "s": f"SKU-{i:03d}",
                "t": f"Product {i}",
                "p": f"{i * 3}.99",
                "a": i % 5 != 0,
                "m": None if i % 2 else '{"color": "red"}',
            }
            for i in range(1, COUNTS["Products"] + 1)
        ],
    )
    conn.execute(
        sa.text("INSERT INTO shop.orders VALUES (:i, :c, :s, :t, :u)"),
        [
            {
                "i": i,
                "c": 1 + i % COUNTS["customers"],
                "s": ["new", "paid", "shipped"][i % 3],
                "t": None if i % 10 == 0 else f"{i}.50",
                "u": base + timedelta(minutes=i // 3),  # ties in the cursor
            }
            for i in range(1, COUNTS["orders"] + 1)
        ],
    )
    conn.execute(
        sa.text("INSERT INTO shop.order_lines VALUES (:o, :l, :s, :q)"),
        [
            {"o": 1 + n // 3, "l": 1 + n % 3, "s": f"SKU-{1 + n % 15:03d}", "q": 1 + n % 4}
            for n in range(COUNTS["order_lines"])
        ],
    )
    conn.execute(
        sa.text(
            "INSERT INTO shop.events (kind, payload, modified_at, day)"
            " VALUES (:k, CAST(:p AS json), :m, :d)"
        ),
        [
            {
                "k": ["click", "view"][i % 2],
                "p": f'{{"n": {i}}}',
                "m": datetime(2024, 3, 2) + timedelta(seconds=i),
                "d": datetime(2024, 3, 2).date(),
            }
            for i in range(COUNTS["events"])
        ],
    )


@pytest.fixture
def shop_pg(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(URL of a read-only role with its own password, that password)."""
    admin = sa.create_engine(postgres_url, poolclass=NullPool)
    role = f"init_reader_{uuid.uuid4().hex[:8]}"
    password = f"Pw@{uuid.uuid4().hex}/x"  # characters URLs reserve
    database = sa.make_url(postgres_url).database
    with admin.begin() as conn:
        conn.exec_driver_sql(PG_SCHEMA)
        fill_postgres(conn)
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA shop TO {role}")
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {role}")
    url = sa.make_url(postgres_url).set(username=role, password=password)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def run(args: list[str], folder: Path, env: dict[str, str], timeout: float = 180) -> str:
    """Run ``dataplump ARGS`` as a process; return its stdout (fail with both streams)."""
    result = subprocess.run(
        [sys.executable, "-m", "dataplump", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def stage_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPLUMP")}
    return env | {"NO_COLOR": "1", "COLUMNS": "200"} | extra


def row_of(out: str, table: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [table])


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_folder_runs_extract_transform_load(
    tmp_path: Path, shop_pg: tuple[str, str], kafka_bootstrap: str
) -> None:
    url, password = shop_pg
    folder = tmp_path / "shop"
    name = f"init_{uuid.uuid4().hex[:8]}"
    result = runner.invoke(
        app,
        ["init", str(folder), "--url", url, "--schema", "shop", "--name", name],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    variable = f"{name.upper()}_DB_PASSWORD"
    assert f"export {variable}=" in result.stdout
    assert "as it is, even with characters URLs reserve" in result.stdout
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 9, files  # pipeline, 5 contracts, 2 output contracts, 1 step
    for path in files:
        assert password not in path.read_text(), f"the password is written in {path}"
    text = (folder / "dataplump.yaml").read_text()
    assert f":${{{variable}}}@" in text
    assert "schema: shop" in text

    # the password as it is (it holds `@` and `/`): the loader encodes it in the URL
    env = stage_env(**{variable: password, "DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap})
    config = str(folder / "dataplump.yaml")
    check = run(["config", "check", "-c", config, "--steps"], folder, env)
    assert "is valid" in check
    assert re.search(r"orders\s+incremental\s+id\s+updatedAt", check), check
    assert re.search(r"events\s+incremental\s+event_id\s+modified_at", check), check
    assert re.search(r"order_lines\s+full\s+order_id, line", check), check

    extracted = run(["extract", "-c", config, "--once"], folder, env)
    for table, count in COUNTS.items():
        assert row_of(extracted, table)[1:4] == [str(count), str(count), "0"], extracted
    transformed = run(["transform", "-c", config, "--once"], folder, env)
    for table, count in COUNTS.items():
        assert row_of(transformed, table)[1:4] == [str(count), str(count), "0"], transformed
    loaded = run(["load", "-c", config, "--once"], folder, env)
    assert row_of(loaded, "_dlq")[1] == "0", loaded
    assert row_of(loaded, "_failed")[1] == "0", loaded

    lake = folder / "lake"
    for table, count in COUNTS.items():
        frame = pl.read_delta(str(lake / table))
        assert frame.height == count, (table, frame.height)
    customers = pl.read_delta(str(lake / "customers"))
    example = next(t for t in COUNTS if (folder / "steps" / f"{t.lower()}.py").exists())
    step_columns = set(pl.read_delta(str(lake / example)).columns)
    assert any(c.endswith("_length") or c.endswith("_text") for c in step_columns)
    assert any(c.endswith("_missing") for c in step_columns)
    assert "Full Name" in customers.columns


def test_postgres_contracts_from_the_catalog(tmp_path: Path, shop_pg: tuple[str, str]) -> None:
    url, _ = shop_pg
    result = scaffold(url, tmp_path / "p", schema="shop", tables=["orders", "customers", "events"])
    assert result.problems == []
    by_name = {p.name: p for p in result.plan.proposals}
    customers = by_name["customers"].contract()["columns"]
    assert customers["Full Name"] == {"type": "string", "not_null": True}
    assert customers["country"] == {
        "type": "string",
        "not_null": True,
        "accepted_values": ["FI", "NO", "SE"],
    }
    assert customers["created_at"] == {"type": "timestamptz", "not_null": True}
    orders = by_name["orders"].contract()["columns"]
    assert orders["total"] == {"type": "decimal(12,2)", "min": 0}
    assert by_name["orders"].cursor == "updatedAt"
    assert by_name["orders"].relationships[0][0] == {
        "name": "fk_customer_id",
        "relationships": {"column": "customer_id", "to": "customers", "field": "id"},
    }
    events = by_name["events"].contract()["columns"]
    assert events["payload"] == {"type": "string"}
    assert events["modified_at"] == {"type": "timestamp", "not_null": True}
    assert by_name["events"].cursor == "modified_at"


def test_postgres_unknown_schema_is_one_line(tmp_path: Path, shop_pg: tuple[str, str]) -> None:
    url, password = shop_pg
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--url", url, "--schema", "nope"])
    assert result.exit_code == 1
    assert "no tables in schema `nope`" in result.stderr
    assert password not in result.output


def test_postgres_wrong_password_is_one_line_without_it(
    tmp_path: Path, shop_pg: tuple[str, str]
) -> None:
    url, password = shop_pg
    wrong = sa.make_url(url).set(password="not-" + password).render_as_string(hide_password=False)
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--url", wrong])
    assert result.exit_code == 1, result.output
    assert "rejected the login" in result.stderr, result.stderr
    assert password not in result.output
    assert not (tmp_path / "p").exists()


MARIADB_SCHEMA = [
    """CREATE TABLE customers (
      id INT UNSIGNED NOT NULL PRIMARY KEY,
      `Full Name` VARCHAR(80) NOT NULL,
      vip TINYINT(1) NOT NULL,
      tier ENUM('gold', 'silver') NULL,
      created DATETIME(6) NOT NULL
    )""",
    """CREATE TABLE orders (
      id BIGINT NOT NULL PRIMARY KEY,
      customer_id INT UNSIGNED NOT NULL,
      amount DECIMAL(10,2) NOT NULL,
      note TEXT,
      modified TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
      CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
    )""",
]


def fill_mariadb(url: str) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    rows: list[dict[str, Any]] = [
        {
            "i": i,
            "n": f"C {i}",
            "v": i % 2,
            "t": ["gold", "silver", None][i % 3],
            "c": datetime(2024, 1, 1) + timedelta(hours=i),
        }
        for i in range(1, 31)
    ]
    with engine.begin() as conn:
        for statement in MARIADB_SCHEMA:
            conn.exec_driver_sql(statement)
        conn.execute(sa.text("INSERT INTO customers VALUES (:i, :n, :v, :t, :c)"), rows)
        conn.execute(
            sa.text("INSERT INTO orders VALUES (:i, :c, :a, NULL, TIMESTAMP'2024-02-01 00:00:00')"),
            [{"i": i, "c": 1 + i % 30, "a": f"{i}.00"} for i in range(1, 61)],
        )
    engine.dispose()


@pytest.mark.mariadb
def test_mariadb_reflection(tmp_path: Path, mariadb_url: str) -> None:
    fill_mariadb(mariadb_url)
    result = scaffold(mariadb_url, tmp_path / "p")
    assert result.problems == []
    by_name = {p.name: p for p in result.plan.proposals}
    customers = by_name["customers"].contract()["columns"]
    assert customers["id"] == {"type": "int64", "not_null": True, "unique": True}  # unsigned
    assert customers["Full Name"] == {"type": "string", "not_null": True}
    assert customers["vip"] == {"type": "boolean", "not_null": True}
    assert customers["tier"] == {"type": "string", "accepted_values": ["gold", "silver"]}
    assert customers["created"] == {"type": "timestamp", "not_null": True}
    orders = by_name["orders"].contract()["columns"]
    assert orders["amount"] == {"type": "decimal(10,2)", "not_null": True, "min": 0}
    assert orders["modified"] == {"type": "timestamptz", "not_null": True}
    assert by_name["orders"].cursor == "modified"
    assert by_name["customers"].cursor is None
    assert by_name["orders"].output_contract() == {
        "version": "1",
        "columns": {"customer_id": {"type": "int64"}},
        "rules": [
            {
                "name": "fk_customer_id",
                "relationships": {"column": "customer_id", "to": "customers", "field": "id"},
            }
        ],
    }
    assert result.plan.password_variable is not None
    password = sa.make_url(mariadb_url).password or ""
    for path in result.written:
        assert f":{password}@" not in path.read_text()


@pytest.mark.kafka
@pytest.mark.mariadb
@pytest.mark.slow
def test_mariadb_folder_runs_extract_transform_load(
    tmp_path: Path, mariadb_url: str, kafka_bootstrap: str
) -> None:
    fill_mariadb(mariadb_url)
    folder = tmp_path / "m"
    name = f"init_{uuid.uuid4().hex[:8]}"
    result = scaffold(mariadb_url, folder, name=name)
    assert result.problems == []
    variable = result.plan.password_variable
    assert variable is not None
    password = sa.make_url(mariadb_url).password or ""
    env = stage_env(**{variable: password, "DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap})
    config = str(folder / "dataplump.yaml")
    counts = {"customers": 30, "orders": 60}
    extracted = run(["extract", "-c", config, "--once"], folder, env)
    for table, count in counts.items():
        assert row_of(extracted, table)[1:4] == [str(count), str(count), "0"], extracted
    transformed = run(["transform", "-c", config, "--once"], folder, env)
    for table, count in counts.items():
        assert row_of(transformed, table)[1:4] == [str(count), str(count), "0"], transformed
    run(["load", "-c", config, "--once"], folder, env)
    for table, count in counts.items():
        assert pl.read_delta(str(folder / "lake" / table)).height == count, table
