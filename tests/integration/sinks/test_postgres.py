"""PostgresSink against the project's local PostgreSQL: a fresh database per test."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

from dataplump.config.models import SinkConfig
from dataplump.sinks import LINEAGE_COLUMNS, SinkError, SinkTarget, TransientSinkError
from dataplump.sinks.postgres import JSON_METADATA, PostgresSink

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TOPIC = "shop.orders.processed"
EXTRACTED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def batch(
    columns: dict[str, pa.Array | list[Any]],
    offsets: Sequence[int],
    *,
    partition: int = 0,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """Data columns plus the lineage columns, one row per offset."""
    n = len(offsets)
    data = pa.table(columns, schema=schema)
    lineage = {
        "_dp_source": ["orders"] * n,
        "_dp_pk": [f"k{o}" for o in offsets],
        "_dp_extracted_at": [EXTRACTED] * n,
        "_dp_run": ["run-1"] * n,
        "_dp_topic": [TOPIC] * n,
        "_dp_partition": [partition] * n,
        "_dp_offset": list(offsets),
    }
    for name, type_ in LINEAGE_COLUMNS.items():
        data = data.append_column(pa.field(name, type_), pa.array(lineage[name], type_))
    return data


def next_offsets(rows: pa.Table) -> dict[tuple[str, int], int]:
    found: dict[tuple[str, int], int] = {}
    for t, p, o in zip(
        rows["_dp_topic"].to_pylist(),
        rows["_dp_partition"].to_pylist(),
        rows["_dp_offset"].to_pylist(),
        strict=True,
    ):
        found[(t, p)] = max(found.get((t, p), 0), o + 1)
    return found


def make_sink(
    url: str,
    *,
    mode: str = "merge",
    key: tuple[str, ...] = ("id",),
    table: str = "orders",
    **config: Any,
) -> PostgresSink:
    settings = SinkConfig.model_validate({"kind": "postgres", "url": url, "mode": mode, **config})
    return PostgresSink("dw", settings, SinkTarget("shop", table, key, mode=mode))


def query(url: str, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    u = make_url(url)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
    ) as conn:
        return conn.execute(text, params).fetchall()


def columns_of(url: str, table: str = "orders", schema: str = "public") -> dict[str, str]:
    rows = query(
        url,
        "SELECT column_name, CASE WHEN data_type = 'numeric' THEN"
        " format('numeric(%%s,%%s)', numeric_precision, numeric_scale) ELSE data_type END"
        " FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
        " ORDER BY ordinal_position",
        (schema, table),
    )
    return dict(rows)


@pytest.fixture
def sinks() -> Iterator[list[PostgresSink]]:
    opened: list[PostgresSink] = []
    yield opened
    for sink in opened:
        sink.close()


def test_creates_the_table_with_exact_types(postgres_url: str) -> None:
    sink = make_sink(postgres_url, schema="dw")
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("qty", pa.int32()),
            pa.field("small", pa.int16()),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("ratio", pa.float64()),
            pa.field("name", pa.string()),
            pa.field("attrs", pa.string(), metadata=JSON_METADATA),
            pa.field("active", pa.bool_()),
            pa.field("day", pa.date32()),
            pa.field("local", pa.timestamp("us")),
            pa.field("at", pa.timestamp("us", "UTC")),
            pa.field("blob", pa.binary()),
        ]
    )
    row = {
        "id": [1],
        "qty": [2],
        "small": [3],
        "amount": [Decimal("10.50")],
        "ratio": [0.5],
        "name": ["a"],
        "attrs": ['{"x": 1}'],
        "active": [True],
        "day": [date(2024, 1, 2)],
        "local": [datetime(2024, 1, 2, 3, 4, 5)],
        "at": [EXTRACTED],
        "blob": [b"\x00\xff"],
    }
    rows = batch(row, [0], schema=schema)
    result = sink.write(rows, next_offsets(rows))
    sink.close()
    assert (result.written, result.skipped) == (1, 0)
    assert columns_of(postgres_url, schema="dw") == {
        "id": "bigint",
        "qty": "integer",
        "small": "smallint",
        "amount": "numeric(12,2)",
        "ratio": "double precision",
        "name": "text",
        "attrs": "jsonb",
        "active": "boolean",
        "day": "date",
        "local": "timestamp without time zone",
        "at": "timestamp with time zone",
        "blob": "bytea",
        "_dp_source": "text",
        "_dp_pk": "text",
        "_dp_extracted_at": "timestamp with time zone",
        "_dp_run": "text",
        "_dp_topic": "text",
        "_dp_partition": "integer",
        "_dp_offset": "bigint",
    }
    pk = query(
        postgres_url,
        "SELECT kcu.column_name FROM information_schema.table_constraints tc"
        " JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)"
        " WHERE tc.table_schema = 'dw' AND tc.table_name = 'orders'"
        " AND tc.constraint_type = 'PRIMARY KEY'",
    )
    assert pk == [("id",)]
    assert query(postgres_url, "SELECT attrs->>'x', blob, name FROM dw.orders") == [
        ("1", b"\x00\xff", "a")
    ]


def test_decimals_and_zoned_timestamps_round_trip_exactly(postgres_url: str) -> None:
    sink = make_sink(postgres_url, mode="append", key=())
    amounts = [Decimal("12345678901234567890.123456"), Decimal("-0.000001"), None]
    zone = timezone(timedelta(hours=5, minutes=30))
    ats = [datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=zone), datetime(1, 1, 1, tzinfo=UTC)]
    rows = batch(
        {
            "amount": pa.array(amounts, pa.decimal128(38, 6)),
            "at": pa.array([*ats, None], pa.timestamp("us", "UTC")),
            "s": ["", None, 'quote " comma , newline \n'],
        },
        [0, 1, 2],
    )
    sink.write(rows, next_offsets(rows))
    sink.close()
    got = query(postgres_url, "SELECT amount, at, s FROM orders ORDER BY _dp_offset")
    assert [r[0] for r in got] == amounts
    assert [r[1] for r in got] == [*ats, None]
    assert [r[2] for r in got] == ["", None, 'quote " comma , newline \n']


def test_append_adds_every_row(postgres_url: str, sinks: list[PostgresSink]) -> None:
    sink = make_sink(postgres_url, mode="append", key=())
    sinks.append(sink)
    first = batch({"id": [1, 1], "v": ["a", "b"]}, [0, 1])
    second = batch({"id": [1], "v": ["c"]}, [2])
    sink.write(first, next_offsets(first))
    sink.write(second, next_offsets(second))
    assert query(postgres_url, "SELECT id, v FROM orders ORDER BY _dp_offset") == [
        (1, "a"),
        (1, "b"),
        (1, "c"),
    ]


def test_merge_newest_wins_within_and_across_batches(
    postgres_url: str, sinks: list[PostgresSink]
) -> None:
    sink = make_sink(postgres_url)
    sinks.append(sink)
    # Offsets out of order in the batch: the highest offset wins, not the last row.
    first = batch({"id": [1, 2, 1, 3], "v": ["new", "b", "old", "c"]}, [5, 3, 4, 6])
    result = sink.write(first, next_offsets(first))
    assert (result.written, result.skipped) == (3, 0)
    second = batch({"id": [2, 4], "v": ["b2", "d"]}, [7, 8])
    sink.write(second, next_offsets(second))
    assert query(postgres_url, "SELECT id, v, _dp_offset FROM orders ORDER BY id") == [
        (1, "new", 5),
        (2, "b2", 7),
        (3, "c", 6),
        (4, "d", 8),
    ]


def test_offsets_round_trip_and_never_go_back(postgres_url: str, sinks: list[PostgresSink]) -> None:
    sink = make_sink(postgres_url)
    sinks.append(sink)
    assert sink.committed() == {}
    rows = batch({"id": [1]}, [0])
    sink.write(rows, {(TOPIC, 0): 10, (TOPIC, 1): 4})
    assert sink.committed() == {(TOPIC, 0): 10, (TOPIC, 1): 4}
    sink.write(rows.slice(0, 0), {(TOPIC, 0): 7, (TOPIC, 2): 1})
    assert sink.committed() == {(TOPIC, 0): 10, (TOPIC, 1): 4, (TOPIC, 2): 1}
    other = make_sink(postgres_url, table="customers")
    sinks.append(other)
    assert other.committed() == {}
    assert query(postgres_url, "SELECT count(*) FROM _dataplump_offsets") == [(3,)]


def test_the_same_batch_twice_is_applied_once(postgres_url: str, sinks: list[PostgresSink]) -> None:
    sink = make_sink(postgres_url, mode="append", key=())
    sinks.append(sink)
    rows = batch({"id": [1, 2, 3]}, [0, 1, 2])
    assert sink.write(rows, next_offsets(rows)).written == 3
    again = sink.write(rows, next_offsets(rows))
    assert (again.written, again.skipped) == (0, 3)
    # A batch overlapping the committed offsets keeps only the new rows.
    overlap = batch({"id": [3, 4]}, [2, 3])
    assert sink.write(overlap, next_offsets(overlap)).written == 1
    # Rows of another partition are not dropped by partition 0's offsets.
    other = batch({"id": [9]}, [0], partition=1)
    assert sink.write(other, next_offsets(other)).written == 1
    assert query(postgres_url, "SELECT id FROM orders ORDER BY id") == [
        (1,),
        (2,),
        (3,),
        (4,),
        (9,),
    ]


def test_two_writers_are_fenced(postgres_url: str, sinks: list[PostgresSink]) -> None:
    """Two loaders of the same table write the same batches at once: each row lands once."""
    a, b = (
        make_sink(postgres_url, mode="append", key=()),
        make_sink(postgres_url, mode="append", key=()),
    )
    sinks.extend([a, b])
    batches = [
        batch({"id": list(range(i * 100, i * 100 + 100))}, range(i * 100, i * 100 + 100))
        for i in range(10)
    ]
    start = threading.Barrier(2)
    written: list[int] = []
    errors: list[BaseException] = []

    def run(sink: PostgresSink) -> None:
        try:
            start.wait()
            for rows in batches:
                written.append(sink.write(rows, next_offsets(rows)).written)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(written) == 1000
    assert query(postgres_url, "SELECT count(*), count(DISTINCT id) FROM orders") == [(1000, 1000)]
    assert a.committed() == {(TOPIC, 0): 1000}


def test_a_new_column_is_added(postgres_url: str, sinks: list[PostgresSink]) -> None:
    sink = make_sink(postgres_url)
    sinks.append(sink)
    first = batch({"id": [1], "v": ["a"]}, [0])
    sink.write(first, next_offsets(first))
    second = batch(
        {"id": [2], "v": ["b"], "note": pa.array([Decimal("1.5")], pa.decimal128(4, 1))}, [1]
    )
    sink.write(second, next_offsets(second))
    assert columns_of(postgres_url)["note"] == "numeric(4,1)"
    assert query(postgres_url, "SELECT id, note FROM orders ORDER BY id") == [
        (1, None),
        (2, Decimal("1.5")),
    ]
    # A batch without the column leaves it alone (NULL for new rows, kept on merge).
    third = batch({"id": [2], "v": ["b2"]}, [2])
    sink.write(third, next_offsets(third))
    assert query(postgres_url, "SELECT v, note FROM orders WHERE id = 2") == [
        ("b2", Decimal("1.5"))
    ]


def test_a_changed_type_is_refused_unless_allowed(
    postgres_url: str, sinks: list[PostgresSink]
) -> None:
    sink = make_sink(postgres_url)
    sinks.append(sink)
    first = batch({"id": [1], "qty": pa.array([1], pa.int32())}, [0])
    sink.write(first, next_offsets(first))
    # Narrower data fits the column: no change needed.
    narrow = batch({"id": [2], "qty": pa.array([2], pa.int16())}, [1])
    sink.write(narrow, next_offsets(narrow))
    changed = batch({"id": [3], "qty": pa.array(["3"], pa.string())}, [2])
    with pytest.raises(SinkError) as caught:
        sink.write(changed, next_offsets(changed))
    message = str(caught.value)
    assert "`qty`" in message
    assert "integer" in message
    assert "text" in message
    assert "allow_type_changes" in message
    assert sink.committed() == {(TOPIC, 0): 2}

    allowed = make_sink(postgres_url, allow_type_changes=True)
    sinks.append(allowed)
    wider = batch({"id": [3], "qty": pa.array([2**40], pa.int64())}, [2])
    allowed.write(wider, next_offsets(wider))
    assert columns_of(postgres_url)["qty"] == "bigint"
    assert query(postgres_url, "SELECT qty FROM orders ORDER BY id") == [(1,), (2,), (2**40,)]


def test_a_failing_batch_leaves_nothing_behind(
    postgres_url: str, sinks: list[PostgresSink]
) -> None:
    sink = make_sink(postgres_url)
    sinks.append(sink)
    first = batch({"id": [1], "amount": pa.array([Decimal("1.00")], pa.decimal128(5, 2))}, [0])
    sink.write(first, next_offsets(first))
    # A producer built a decimal(5,2) array without checking it: 123456.78 does not fit.
    bad = pa.array([Decimal("2.00"), Decimal("123456.78")], pa.decimal128(10, 2)).cast(
        pa.decimal128(5, 2), safe=False
    )
    rows = batch({"id": [2, 3], "amount": bad, "extra": ["x", "y"]}, [1, 2])
    with pytest.raises(SinkError) as caught:
        sink.write(rows, next_offsets(rows))
    message = str(caught.value)
    assert "column `amount`" in message
    assert "overflow" in message
    assert "\n" not in message
    assert query(postgres_url, "SELECT id FROM orders") == [(1,)]
    assert "extra" not in columns_of(postgres_url)  # the ALTER was rolled back too
    assert sink.committed() == {(TOPIC, 0): 1}
    # The sink still works after the failure.
    good = batch({"id": [2]}, [1])
    assert sink.write(good, next_offsets(good)).written == 1


def test_a_failing_first_batch_creates_no_table(postgres_url: str) -> None:
    sink = make_sink(postgres_url, mode="append", key=())
    rows = batch({"s": ["nul \x00 byte"]}, [0])
    with pytest.raises(SinkError, match="column `s`"):
        sink.write(rows, next_offsets(rows))
    sink.close()
    assert query(
        postgres_url, "SELECT to_regclass('orders'), to_regclass('_dataplump_offsets')"
    ) == [(None, None)]


def test_connection_refused_is_one_transient_line_without_the_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"postgresql+psycopg://loader:s3cr%40t-pw@127.0.0.1:{port}/dw"
    sink = make_sink(url)
    rows = batch({"id": [1]}, [0])
    with pytest.raises(TransientSinkError) as caught:
        sink.write(rows, next_offsets(rows))
    message = str(caught.value)
    assert "\n" not in message
    assert "s3cr" not in message
    assert "%40t" not in message
    assert f"127.0.0.1:{port}" in message
    assert "retry" in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    with pytest.raises(TransientSinkError):
        sink.committed()
    assert "s3cr" not in sink.describe()


def test_a_server_restart_mid_transaction_is_transient(
    postgres_url: str, sinks: list[PostgresSink]
) -> None:
    """The connection is killed between writes (as a restart does): transient, then recovers."""
    sink = make_sink(postgres_url)
    sinks.append(sink)
    first = batch({"id": [1]}, [0])
    sink.write(first, next_offsets(first))
    database = make_url(postgres_url).database
    query(
        postgres_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name = 'dataplump sink dw'",
        (database,),
    )
    second = batch({"id": [2]}, [1])
    with pytest.raises(TransientSinkError, match="retry later"):
        sink.write(second, next_offsets(second))
    assert sink.write(second, next_offsets(second)).written == 1
    assert query(postgres_url, "SELECT id FROM orders ORDER BY id") == [(1,), (2,)]


def test_identifiers_are_quoted(postgres_url: str, sinks: list[PostgresSink]) -> None:
    sink = make_sink(postgres_url, key=('we"ird id',), table='Order "x"; DROP', schema="My Schema")
    sinks.append(sink)
    rows = batch({'we"ird id': [1], "Select": ["v"]}, [0])
    sink.write(rows, next_offsets(rows))
    assert query(
        postgres_url, 'SELECT "we""ird id", "Select" FROM "My Schema"."Order ""x""; DROP"'
    ) == [(1, "v")]
    assert sink.committed() == {(TOPIC, 0): 1}


def test_merge_without_a_key_is_refused(postgres_url: str) -> None:
    with pytest.raises(SinkError, match="no primary key"):
        make_sink(postgres_url, key=())


def test_the_reader_reads_and_counts_what_the_sink_committed(postgres_url: str) -> None:
    """`sinks.read` (status, ledger, dashboard, reports) on a warehouse table: the rows,
    counts per column value, an absent table, and the URL's query passed on."""
    from dataplump.sinks.read import count_rows, read_table

    sink = make_sink(postgres_url, schema="dw", mode="append")
    statuses = ["paid", "shipped", "paid", None]
    rows = batch({"id": [1, 2, 3, 4], "status": statuses}, [0, 1, 2, 3])
    sink.write(rows, next_offsets(rows))
    sink.close()
    config = SinkConfig.model_validate(
        {"kind": "postgres", "url": postgres_url + "?sslmode=disable", "schema": "dw"}
    )
    frame = read_table(config, "orders", ["id", "status", "not_there"])
    assert frame.columns == ["id", "status"]
    assert sorted(frame.rows()) == sorted(zip([1, 2, 3, 4], statuses, strict=True))
    assert count_rows(config, "orders") == {(): 4}
    assert count_rows(config, "orders", ["status"]) == {("paid",): 2, ("shipped",): 1, (None,): 1}
    assert count_rows(config, "refunds") == {}
    assert read_table(config, "refunds").is_empty()

    # the URL's query reaches the connection: this server has no TLS
    strict = config.model_copy(
        update={"url": SinkConfig.model_validate(
            {"kind": "postgres", "url": postgres_url + "?sslmode=require"}
        ).url}
    )  # fmt: skip
    with pytest.raises(SinkError, match=r"cannot read warehouse table `dw.orders`: .*SSL"):
        count_rows(strict, "orders")
