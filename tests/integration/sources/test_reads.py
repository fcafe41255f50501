"""Full and incremental reads on real PostgreSQL, MariaDB and SQLite: bounded batches,
ties on the cursor, resuming, the lag window and watermarks in the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from dataplump.sources import Watermark
from tests.integration.sources.conftest import Db, ids, read_all

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_full_snapshot_larger_than_batch_size(db: Db) -> None:
    db.items_table()
    db.insert_items([(i, T0) for i in range(2500, 0, -1)])
    with db.open("items", primary_key="id", batch_size=1000) as source:
        with source.read() as read:
            sizes = [batch.num_rows for batch in read]
            assert read.watermark == Watermark(cursor=None, pk=(2500,))
            assert read.rows == 2500
        assert sizes == [1000, 1000, 500]
        table, _ = read_all(source)
    assert ids(table) == list(range(1, 2501))  # ordered by key, each row once
    assert table.column("amount")[0].as_py() == Decimal("1.25")


def test_full_snapshot_resumes_after_a_key(db: Db) -> None:
    db.items_table()
    db.insert_items([(i, T0) for i in range(1, 51)])
    with db.open("items", primary_key="id", batch_size=7) as source:
        read = source.read()
        first = next(read)
        read.close()  # the stage died after storing this watermark
        resumed, end = read_all(source, source.watermark(first))
    assert ids(pa.Table.from_batches([first])) + ids(resumed) == list(range(1, 51))
    assert end == Watermark(cursor=None, pk=(50,))


def test_empty_table_gives_no_batch_and_a_declared_schema(db: Db) -> None:
    db.items_table()
    with db.open("items", primary_key="id") as source:
        table, end = read_all(source)
        assert table.num_rows == 0
        assert end is None
        assert source.schema.field("amount").type == pa.decimal128(15, 2)
        inc = db.open("items", primary_key="id", mode="incremental", cursor="updated_at")
        with inc:
            assert read_all(inc)[0].num_rows == 0


def test_incremental_reads_inserted_and_updated_rows_once(db: Db) -> None:
    db.items_table()
    base = db.now() - timedelta(hours=1)
    db.insert_items([(i, base + timedelta(seconds=i)) for i in range(1, 21)])
    with db.open(
        "items", primary_key="id", mode="incremental", cursor="updated_at", batch_size=6
    ) as source:
        first, mark = read_all(source)
        assert ids(first) == list(range(1, 21))
        assert mark == Watermark(cursor=db.read_ts(base + timedelta(seconds=20)), pk=(20,))

        later = db.now() - timedelta(seconds=5)
        db.insert_items([(21, later), (22, later)])
        db.run(
            "UPDATE items SET name = 'changed', updated_at = :ts WHERE id = 3",
            params=[{"ts": db.ts(later)}],
        )
        second, mark2 = read_all(source, mark)
        # Ordered by (cursor, key): the updated row 3 ties with 21 and 22 on the cursor.
        assert ids(second) == [3, 21, 22]
        assert second.column("name").to_pylist()[0] == "changed"
        assert mark2 == Watermark(cursor=db.read_ts(later), pk=(22,))

        third, mark3 = read_all(source, mark2)
        assert third.num_rows == 0
        assert mark3 == mark2


def test_ties_on_the_cursor_across_batch_boundaries(db: Db) -> None:
    db.items_table()
    same = db.now() - timedelta(minutes=10)
    db.insert_items([(i, same) for i in (5, 1, 9, 3, 7, 2, 8, 4, 10, 6)])
    db.insert_items([(11, same - timedelta(seconds=1)), (12, same + timedelta(seconds=1))])
    with db.open(
        "items", primary_key="id", mode="incremental", cursor="updated_at", batch_size=3
    ) as source:
        whole, _ = read_all(source)
        assert ids(whole) == [11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
        # Crash after each batch and resume from its watermark: same rows, once each.
        seen: list[int] = []
        mark: Watermark | None = None
        while True:
            with source.read(mark) as read:
                batch = next(read, None)
                if batch is None:
                    break
                seen += ids(pa.Table.from_batches([batch]))
                mark = read.watermark
        assert seen == ids(whole)


def test_count_through_counts_rows_at_or_behind_a_watermark(db: Db) -> None:
    """What the late-row check compares: ties on the cursor are split by the key, as in
    a read; a capped watermark (no key) covers every row of its cursor value."""
    db.items_table()
    same = db.now() - timedelta(minutes=10)
    db.insert_items([(i, same) for i in range(1, 7)])
    db.insert_items([(7, same - timedelta(seconds=1)), (8, same + timedelta(seconds=1))])
    with db.open("items", primary_key="id", mode="incremental", cursor="updated_at") as source:
        whole, end = read_all(source)
        assert end is not None
        assert source.count_through(end) == 8
        tie = source.watermark(whole.slice(3, 1).to_batches()[0])  # (same, id 3)
        assert source.count_through(tie) == 4  # 7, 1, 2, 3
        assert source.count_through(Watermark(cursor=tie.cursor, pk=None)) == 7
        db.insert_items([(9, same - timedelta(seconds=30))])  # a row written late
        assert source.count_through(tie) == 5


def test_lag_window_keeps_late_commits(db: Db) -> None:
    """A row committed late with an older timestamp is still read (kafka-connect-jdbc #915)."""
    db.items_table()
    now = db.now()
    db.insert_items([(1, now - timedelta(seconds=300)), (2, now - timedelta(seconds=5))])
    args = {"primary_key": "id", "mode": "incremental", "cursor": "updated_at"}
    with db.open("items", lag_seconds=60, **args) as source:
        first, mark = read_all(source)
        assert ids(first) == [1]  # row 2 is inside the lag window: not yet
        read = source.read(mark)
        upper = read.upper_bound
        assert isinstance(upper, datetime)
        read.close()
        expected = db.read_ts(now - timedelta(seconds=60))
        assert abs((upper - expected).total_seconds()) < 30
    # The transaction that wrote row 3 began before row 2's but commits only now.
    db.insert_items([(3, now - timedelta(seconds=20))])
    with db.open("items", **args) as no_lag:
        later, _ = read_all(no_lag, mark)
    assert ids(later) == [3, 2]


def test_watermark_in_the_future_is_capped_with_a_warning(db: Db) -> None:
    db.items_table()
    now = db.now()
    db.insert_items([(1, now - timedelta(minutes=5))])
    with db.open("items", primary_key="id", mode="incremental", cursor="updated_at") as source:
        bad = Watermark(cursor=db.read_ts(now + timedelta(days=1)), pk=(1,))
        with source.read(bad) as read:
            assert list(read) == []
            (warning,) = read.warnings
            assert warning.kind == "future_watermark"
            assert warning.table == "items"
            assert "capped" in warning.message
            capped = read.watermark
            assert capped is not None
            assert capped != bad
            assert capped.pk is None
            assert capped.cursor == read.upper_bound
        # A row written after the capped read is read next, not hidden behind the bad mark.
        db.insert_items([(2, db.now())])
        later, _ = read_all(source, capped)
        assert ids(later) == [2]


def test_rows_dated_in_the_future_are_held_back_and_reported(db: Db) -> None:
    db.items_table()
    now = db.now()
    db.insert_items([(1, now - timedelta(minutes=5)), (2, now + timedelta(days=365))])
    source = db.open("items", primary_key="id", mode="incremental", cursor="updated_at")
    with source, source.read() as read:
        table = pa.Table.from_batches(list(read), schema=source.schema)
        assert [w.kind for w in read.warnings] == ["future_rows"]
        assert read.warnings[0].sample_keys == ((2,),)
        assert read.watermark == Watermark(cursor=db.read_ts(now - timedelta(minutes=5)), pk=(1,))
    assert ids(table) == [1]


def test_integer_cursor_reads_up_to_the_max_at_start(db: Db) -> None:
    db.run(
        "CREATE TABLE events (id INTEGER NOT NULL PRIMARY KEY, version BIGINT NOT NULL,"
        " body VARCHAR(20))",
        "INSERT INTO events VALUES (:id, :version, 'x')",
        params=[{"id": i, "version": 100 - i} for i in range(1, 11)],
    )
    with db.open(
        "events", primary_key="id", mode="incremental", cursor="version", batch_size=4
    ) as source:
        first, mark = read_all(source)
        assert ids(first, "version") == list(range(90, 100))
        assert mark == Watermark(cursor=99, pk=(1,))
        db.run("UPDATE events SET version = 100 WHERE id = 5")
        second, _ = read_all(source, mark)
        assert ids(second) == [5]


def test_composite_key_orders_and_resumes(db: Db) -> None:
    db.run(
        "CREATE TABLE order_lines (order_id INTEGER NOT NULL, line INTEGER NOT NULL,"
        " qty INTEGER, PRIMARY KEY (order_id, line))",
        "INSERT INTO order_lines VALUES (:o, :l, 1)",
        params=[{"o": o, "l": line} for o in (2, 1, 3) for line in (3, 1, 2)],
    )
    with db.open("order_lines", primary_key=["order_id", "line"], batch_size=2) as source:
        table, end = read_all(source)
        keys = list(zip(ids(table, "order_id"), ids(table, "line"), strict=True))
        assert keys == [(o, line) for o in (1, 2, 3) for line in (1, 2, 3)]
        assert end == Watermark(cursor=None, pk=(3, 3))
        rest, _ = read_all(source, Watermark(cursor=None, pk=(2, 1)))
        assert ids(rest, "order_id") == [2, 2, 3, 3, 3]
        assert ids(rest, "line") == [2, 3, 1, 2, 3]


def test_watermark_survives_json(db: Db) -> None:
    db.items_table()
    db.insert_items([(i, T0) for i in range(1, 6)])
    with db.open(
        "items", primary_key="id", mode="incremental", cursor="updated_at", batch_size=2
    ) as source:
        with source.read() as read:
            next(read)
            stored = read.watermark
        assert stored is not None
        restored = Watermark.from_json(stored.to_json())
        assert restored == stored
        rest, _ = read_all(source, restored)
        assert ids(rest) == [3, 4, 5]
