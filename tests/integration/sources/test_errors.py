"""Bad config, bad credentials, unreachable servers and odd identifiers: one clear line each,
DataPlump error types only, the password never shown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dataplump.config.models import SourceConfig, TableConfig
from dataplump.errors import TerminalError, TransientError
from dataplump.sources import (
    SourceError,
    TransientSourceError,
    Watermark,
    open_source,
)
from tests.integration.sources.conftest import Db, ids, read_all

SECRET = "Sup3r-S3cret!pw"
"""A wrong password, to check it is never shown."""


def _open(url: str, table: str = "items", **config: object) -> None:
    source = SourceConfig.model_validate({"url": url})
    config = {"primary_key": "id", **config}
    open_source(source, table, TableConfig.model_validate(config)).close()


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message
    assert SECRET not in message
    assert "Sup3r" not in message
    return message


def test_missing_table_suggests_the_closest(db: Db) -> None:
    db.items_table()
    db.items_table("customers")
    with pytest.raises(SourceError) as caught:
        db.open("itemz", primary_key="id")
    message = _one_line(caught.value)
    assert message.startswith("table `itemz` not found in the default schema of ")
    assert "did you mean `items`?" in message
    assert "(tables: customers, items)" in message
    assert caught.value.table == "itemz"


def test_missing_key_column_suggests_the_closest(db: Db) -> None:
    db.items_table()
    with pytest.raises(SourceError) as caught:
        db.open("items", primary_key="idd")
    message = _one_line(caught.value)
    assert message.startswith("primary key column `idd` of `items` does not exist: did you mean")
    assert "`id`" in message
    assert "fix `tables.items.primary_key`" in message


def test_key_that_differs_from_the_declared_one_is_a_warning(db: Db) -> None:
    db.items_table()
    with db.open("items", primary_key="name") as source:
        kinds = {w.kind for w in source.warnings}
        assert "primary_key_mismatch" in kinds
        (mismatch,) = [w for w in source.warnings if w.kind == "primary_key_mismatch"]
        assert "declares primary key (id) but the config names (name)" in mismatch.message


def test_table_without_primary_key_is_read_by_the_configured_key(db: Db) -> None:
    db.run(
        "CREATE TABLE nokey (code VARCHAR(10) NOT NULL, qty INTEGER)",
        "INSERT INTO nokey VALUES (:code, 1)",
        params=[{"code": c} for c in ("b", "a", "c")],
    )
    with db.open("nokey", primary_key="code") as source:
        assert [w.kind for w in source.warnings] == ["no_primary_key"]
        table, _ = read_all(source)
    assert table.column("code").to_pylist() == ["a", "b", "c"]


def test_null_in_a_configured_key_stops_the_read(db: Db) -> None:
    db.run(
        "CREATE TABLE nokey (code VARCHAR(10), qty INTEGER)",
        "INSERT INTO nokey VALUES (:code, 1)",
        params=[{"code": c} for c in ("a", None)],
    )
    with db.open("nokey", primary_key="code") as source, pytest.raises(SourceError) as caught:
        read_all(source)
    assert _one_line(caught.value).startswith("key column `code` of `nokey` is NULL in a row")


def test_a_view_is_read_with_the_configured_key(db: Db) -> None:
    db.items_table()
    db.insert_items([(i, datetime(2024, 1, 1, tzinfo=UTC)) for i in (3, 1, 2)])
    db.run("CREATE VIEW cheap AS SELECT id, name FROM items WHERE id < 3")
    with db.open("cheap", primary_key="id") as source:
        table, _ = read_all(source)
    assert ids(table) == [1, 2]


def test_missing_cursor_column(db: Db) -> None:
    db.items_table()
    with pytest.raises(SourceError) as caught:
        db.open("items", primary_key="id", mode="incremental", cursor="updatedat")
    message = _one_line(caught.value)
    assert message.startswith("cursor column `updatedat` of `items` does not exist")
    assert "did you mean `updated_at`?" in message


BYTES_TYPE = {"postgres": "bytea", "mariadb": "blob", "sqlite": "BLOB"}
JSON_TYPE = {"postgres": "json", "mariadb": "json", "sqlite": "JSON"}


@pytest.mark.parametrize("column", ["payload", "doc", "label"])
def test_cursor_that_cannot_order_changes(db: Db, column: str) -> None:
    db.run(
        f"CREATE TABLE docs (id INTEGER NOT NULL PRIMARY KEY, payload {BYTES_TYPE[db.kind]},"
        f" doc {JSON_TYPE[db.kind]}, label VARCHAR(10))"
    )
    with pytest.raises(SourceError) as caught:
        db.open("docs", primary_key="id", mode="incremental", cursor=column)
    message = _one_line(caught.value)
    assert message.startswith(f"cursor column `{column}` of `docs` has type")
    assert "which cannot order changes: use a timestamp or an increasing integer" in message


def test_lag_window_needs_a_timestamp_cursor(db: Db) -> None:
    db.run("CREATE TABLE ev (id INTEGER NOT NULL PRIMARY KEY, version INTEGER NOT NULL)")
    with pytest.raises(SourceError) as caught:
        db.open("ev", primary_key="id", mode="incremental", cursor="version", lag_seconds=5)
    assert "`tables.ev.lag_seconds` applies to timestamp cursors" in _one_line(caught.value)


def test_watermark_of_another_config_is_refused(db: Db) -> None:
    db.items_table()
    with db.open("items", primary_key="id", mode="incremental", cursor="updated_at") as source:
        for bad in (
            Watermark(cursor=None, pk=(1,)),
            Watermark(cursor=5, pk=(1,)),
            Watermark(cursor=datetime(2024, 1, 1, tzinfo=UTC), pk=(1, 2)),
            Watermark(cursor=datetime(2024, 1, 1, tzinfo=UTC), pk=("1",)),
        ):
            with pytest.raises(SourceError) as caught:
                source.read(bad)
            assert "does not fit `items`" in _one_line(caught.value)


def test_identifiers_with_quotes_spaces_and_capitals(db: Db) -> None:
    table, key, cursor, price = 'Order "Items"', "Item ID", "Updated At", "Unit`Price"
    db.run(
        f"CREATE TABLE {db.q(table)} ({db.q(key)} INTEGER NOT NULL PRIMARY KEY,"
        f" {db.q(cursor)} {db.ts_type} NOT NULL, {db.q(price)} NUMERIC(8,2))",
        f"INSERT INTO {db.q(table)} VALUES (:k, :ts, 1.5)",  # noqa: S608 - quoted
        params=[
            {"k": k, "ts": db.ts(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=k // 2))}
            for k in range(1, 8)
        ],
    )
    with db.open(table, primary_key=key, mode="incremental", cursor=cursor, batch_size=3) as source:
        assert source.schema.names == [key, cursor, price]
        with source.read() as read:
            first = next(read)
            mark = read.watermark
        rest, _ = read_all(source, mark)
    assert first.column(key).to_pylist() + ids(rest, key) == list(range(1, 8))


def test_table_in_a_named_schema(postgres_url: str) -> None:
    db = Db("postgres", postgres_url)
    db.run('CREATE SCHEMA "Sales Dept"', 'CREATE TABLE "Sales Dept".orders (id int PRIMARY KEY)')
    db.run('INSERT INTO "Sales Dept".orders VALUES (1), (2)')
    with db.open("orders", schema="Sales Dept", primary_key="id") as source:
        assert ids(read_all(source)[0]) == [1, 2]
    with pytest.raises(SourceError) as caught:
        db.open("orders", primary_key="id")
    assert "not found in the default schema" in _one_line(caught.value)
    db.engine.dispose()


def _with_password(url: str, password: str) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_wrong_password_is_terminal_and_never_shown(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    with pytest.raises(SourceError) as caught:
        _open(_with_password(url, SECRET))
    message = _one_line(caught.value)
    assert isinstance(caught.value, TerminalError)
    assert "rejected the login of user `dataplump`" in message
    assert "check the user and password in `source.url`" in message
    assert "***" in message


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_server_down_is_transient(kind: str, request: pytest.FixtureRequest) -> None:
    url = sa.make_url(request.getfixturevalue(f"{kind}_url")).set(port=1, password=SECRET)
    with pytest.raises(TransientSourceError) as caught:
        _open(url.render_as_string(hide_password=False))
    message = _one_line(caught.value)
    assert isinstance(caught.value, TransientError)
    assert message.startswith("cannot reach ")
    assert "127.0.0.1:1" in message


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_unknown_database_is_terminal(kind: str, request: pytest.FixtureRequest) -> None:
    url = sa.make_url(request.getfixturevalue(f"{kind}_url")).set(database="dp_no_such_db")
    with pytest.raises(SourceError) as caught:
        _open(url.render_as_string(hide_password=False))
    assert "has no database `dp_no_such_db`" in _one_line(caught.value)


def test_missing_sqlite_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        _open(f"sqlite:///{tmp_path}/nope.db")
    assert "nope.db` does not exist" in _one_line(caught.value)
    assert not (tmp_path / "nope.db").exists()


def test_unsupported_database() -> None:
    with pytest.raises(SourceError) as caught:
        _open(f"oracle://scott:{SECRET}@db/orcl")
    assert "not `oracle`" in _one_line(caught.value)


def _drain(read: Iterator[object], pause: float = 0.0) -> None:
    for _ in read:
        time.sleep(pause)


def test_postgres_connection_killed_mid_read_is_transient(postgres_url: str) -> None:
    db = Db("postgres", postgres_url)
    db.run(
        "CREATE TABLE big (id int PRIMARY KEY, pad text)",
        "INSERT INTO big SELECT g, repeat('x', 500) FROM generate_series(1, 300000) g",
    )
    source = db.open("big", primary_key="id", batch_size=1000)
    with source, source.read() as read:
        next(read)
        db.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'COPY%' AND pid <> pg_backend_pid()"
        )
        with pytest.raises(TransientSourceError) as caught:
            _drain(read)
    assert "retry later" in _one_line(caught.value).lower()
    db.engine.dispose()


def test_mariadb_connection_killed_mid_read_is_transient(mariadb_url: str) -> None:
    db = Db("mariadb", mariadb_url)
    db.run(
        "CREATE TABLE big (id int PRIMARY KEY, pad text)",
        "INSERT INTO big SELECT seq, repeat('x', 500) FROM seq_1_to_300000",
    )

    def kill_reader() -> None:
        time.sleep(0.2)
        with db.engine.connect() as conn:
            for (pid,) in conn.execute(
                sa.text(
                    "SELECT id FROM information_schema.processlist"
                    " WHERE info LIKE 'SELECT `id`%' AND id <> CONNECTION_ID()"
                )
            ):
                conn.execute(sa.text(f"KILL {int(pid)}"))

    source = db.open("big", primary_key="id", batch_size=100)
    with source, source.read() as read:
        next(read)
        killer = threading.Thread(target=kill_reader)
        killer.start()
        with pytest.raises(TransientSourceError) as caught:
            _drain(read, pause=0.001)
        killer.join()
    _one_line(caught.value)
    db.engine.dispose()
