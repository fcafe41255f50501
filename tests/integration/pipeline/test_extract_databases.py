"""Extraction from real PostgreSQL and MariaDB (and SQLite for ties) into the real broker.

The same promises as ``test_extract.py`` makes for SQLite: valid rows on ``.active``,
invalid ones on ``.dlq`` with ``dp.error.*`` headers and every reason, values that
survive the trip (decimals as strings with their scale, timestamps ISO with offset),
one alert event per batch; plus incremental reads whose batches end inside a group
of rows that share one cursor value.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dataplump.config import load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor, TableCounts
from tests.support.extraction import (
    Kind,
    OrdersDb,
    amount,
    broken_rules,
    is_valid,
    orders_table,
    status,
    updated_at,
    write_pipeline,
)
from tests.support.topics import (
    duplicates,
    headers_of,
    ids,
    invalid_records_alerts,
    key_of,
    read_committed,
    value_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

SERVERS = [
    pytest.param("postgres", id="pg", marks=[pytest.mark.postgres]),
    pytest.param("mariadb", id="mariadb", marks=[pytest.mark.mariadb]),
]
_URL_FIXTURE = {"sqlite": "sqlite_url", "postgres": "postgres_url", "mariadb": "mariadb_url"}

ROWS = 140
BATCH = 30  # every batch holds rows with i % 20 == 7: one alert per batch


def _database(request: pytest.FixtureRequest) -> Iterator[OrdersDb]:
    kind: Kind = request.param
    db = OrdersDb(kind, request.getfixturevalue(_URL_FIXTURE[kind]))
    db.create()
    yield db
    db.close()


@pytest.fixture(params=SERVERS)
def server_db(request: pytest.FixtureRequest) -> Iterator[OrdersDb]:
    """A fresh PostgreSQL or MariaDB database with an empty ``orders`` table."""
    yield from _database(request)


@pytest.fixture(params=[*SERVERS, pytest.param("sqlite", id="sqlite")])
def any_db(request: pytest.FixtureRequest) -> Iterator[OrdersDb]:
    """The same on every backend."""
    yield from _database(request)


def extractor(tmp_path: Path, bootstrap: str, db: OrdersDb, mode: str, batch: int) -> Extractor:
    file = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=f"db{uuid.uuid4().hex[:8]}",
        url=db.url,
        bootstrap=bootstrap,
        tables={"orders": orders_table(db.kind, mode=mode, batch_size=batch)},
    )
    return Extractor(load_config(file), bootstrap)


def expected_value(i: int) -> dict[str, Any]:
    """Row ``i`` as a record value: decimal with its scale, timestamp with offset."""
    return {
        "id": i,
        "amount": f"{amount(i):.2f}",
        "status": status(i),
        "updated_at": updated_at(i).isoformat(timespec="microseconds"),
    }


def test_full_extraction_splits_rows_losslessly_with_reasons(
    tmp_path: Path, kafka_bootstrap: str, server_db: OrdersDb
) -> None:
    server_db.insert(range(1, ROWS + 1))
    ex = extractor(tmp_path, kafka_bootstrap, server_db, "full", BATCH)
    [counts] = ex.run_once()
    bad = [i for i in range(1, ROWS + 1) if not is_valid(i)]
    assert (counts.read, counts.valid, counts.invalid) == (ROWS, ROWS - len(bad), len(bad))
    assert counts.batches == -(-ROWS // BATCH)

    name = ex.config.name
    active = read_committed(kafka_bootstrap, topics.active(name, "orders"))
    dlq = read_committed(kafka_bootstrap, topics.dlq(name, "orders"))
    assert [key_of(m) for m in active] == [i for i in range(1, ROWS + 1) if is_valid(i)]
    assert [key_of(m) for m in dlq] == bad

    for message in active + dlq:
        i = key_of(message)
        assert message.key() == f'{{"id":{i}}}'.encode()
        assert value_of(message) == expected_value(i)  # "12.10", "...T00:00:01.250000+00:00"
        headers = headers_of(message)
        assert headers["dp.source"] == b"orders"
        assert headers["dp.pk"] == message.key()
        assert headers["dp.run"] == ex.run_id.encode()
        assert datetime.fromisoformat(headers["dp.extracted_at"].decode()).utcoffset() is not None

    for message in dlq:
        i = key_of(message)
        headers = headers_of(message)
        reasons = json.loads(headers["dp.error.reasons"])
        assert {(r["rule"], r["column"]) for r in reasons} == broken_rules(i)
        assert headers["dp.error.stage"] == b"extract"
        assert headers["dp.error.contract"] == b"3"
        assert set(headers["dp.error.rules"].decode().split(",")) == {
            f"{rule}({column})" for rule, column in broken_rules(i)
        }
        assert headers["dp.error.message"].decode() == reasons[0]["message"]
        by_rule = {r["rule"]: r for r in reasons}
        assert by_rule["min"]["value"] == f"{amount(i):.2f}"
        assert by_rule["min"]["message"]
        if "accepted_values" in by_rule:
            assert by_rule["accepted_values"]["value"] == "lost"

    alerts = invalid_records_alerts(kafka_bootstrap, name)
    assert len(alerts) == counts.batches  # one event per batch, never one per row
    assert sum(a.count for a in alerts) == len(bad)
    rules: Counter[str] = Counter()
    for alert in alerts:
        rules.update(alert.counts_by_rule)
        assert (alert.table, alert.stage, alert.run_id) == ("orders", "extract", ex.run_id)
        assert alert.contract_version == "3"
        assert alert.owner == "@orders-team"
        # routing: the owners of the rules broken in this batch (status has its own owner)
        expected = {"@orders-team"} | (
            {"@shop-ops"} if "accepted_values(status)" in alert.counts_by_rule else set()
        )
        assert set(alert.owners) == expected
        assert alert.kept_in == topics.dlq(name, "orders")
        assert 1 <= len(alert.sample_keys) <= alert.count
    assert rules == {
        "min(amount)": len(bad),
        "accepted_values(status)": sum(1 for i in range(1, ROWS + 1) if status(i) == "lost"),
    }


def test_alert_sample_keys_are_the_key_values(
    tmp_path: Path, kafka_bootstrap: str, server_db: OrdersDb
) -> None:
    server_db.insert(range(1, BATCH + 1))
    ex = extractor(tmp_path, kafka_bootstrap, server_db, "full", BATCH)
    ex.run_once()
    [alert] = invalid_records_alerts(kafka_bootstrap, ex.config.name)
    assert alert.sample_keys == ("7", "27")  # as docs/notify.md shows them, not {'id': 7}


class Stop(Exception):
    """Raised from the progress callback to end a run after some committed batches."""


def test_incremental_ties_on_the_cursor_across_batch_boundaries(
    tmp_path: Path, kafka_bootstrap: str, any_db: OrdersDb
) -> None:
    # 7 rows share each updated_at value and batches hold 5 rows: most batches end, and
    # some runs stop, in the middle of a group of equal cursor values.
    any_db.insert(range(1, 61))
    ex = extractor(tmp_path, kafka_bootstrap, any_db, "incremental", 5)

    def stop_after_three(counts: TableCounts) -> None:
        if counts.batches == 3 and counts.finished is None:
            raise Stop

    stopping = Extractor(ex.config, kafka_bootstrap, on_progress=stop_after_three)
    with pytest.raises(Stop):
        stopping.run_once()  # committed ids 1-15; 14-20 share one updated_at

    [rest] = ex.run_once()
    assert rest.read == 45  # 16-60: nothing of the first run again, nothing skipped

    any_db.insert(range(61, 67))  # 61-62 tie with 56-60 (the watermark's cursor value)
    [more] = ex.run_once()
    assert more.read == 6
    [nothing] = ex.run_once()
    assert nothing.read == 0

    name = ex.config.name
    active = read_committed(kafka_bootstrap, topics.active(name, "orders"))
    dlq = read_committed(kafka_bootstrap, topics.dlq(name, "orders"))
    both = ids(active) + ids(dlq)
    assert not duplicates(both)
    assert set(both) == set(range(1, 67))
    order = [key_of(m) for m in active]
    assert order == sorted(order)  # in (cursor, key) order, across runs
