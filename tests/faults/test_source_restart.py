"""The source database restarted in the middle of a read: extraction retries from the last
committed batch and no row is lost or doubled.

docs/extract.md promises that a transient source error makes the stage retry after the
last committed batch. Here the PostgreSQL server itself goes away (a fast shutdown, as a
restart or failover does: every connection ends, new ones are refused) after two batches
of a table were committed, while the rest of the table is still streaming, and comes
back a few seconds later. ``dataplump extract --once`` must say why it waits, go on, and
end with every source row exactly once across ``.active`` and ``.dlq``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplump.pipeline import topics
from dataplump.pipeline.state import ensure_state_topics
from dataplump.testing.databases import PostgresServer
from tests.support.extraction import (
    Extraction,
    OrdersDb,
    fill_wide_orders,
    is_valid,
    orders_table,
    write_pipeline,
)
from tests.support.private_postgres import private_postgres
from tests.support.topics import StateWatcher, duplicates, ids, read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

ROWS = 60_000
"""Wide rows (a 200-character note, ~15 MB): the read is still streaming after two
batches when the server goes."""
BATCH = 2_000
DOWN_SECONDS = 3.0


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with private_postgres("srestart") as server:
        yield server


@pytest.fixture
def orders(server: PostgresServer) -> Iterator[OrdersDb]:
    db = OrdersDb("postgres", server.create_database())
    db.create()
    fill_wide_orders(db, ROWS)
    db.engine.dispose()  # no connection of the test's own survives the restart
    yield db
    db.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_the_source_restarted_mid_read_is_waited_for_and_rows_land_once(
    tmp_path: Path, kafka_bootstrap: str, server: PostgresServer, orders: OrdersDb, mode: str
) -> None:
    name = f"srestart{uuid.uuid4().hex[:8]}"
    config = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=name,
        url=orders.url,
        bootstrap=kafka_bootstrap,
        tables={"orders": orders_table("postgres", mode=mode, batch_size=BATCH)},
    )
    state_topic = topics.extract_state(name, "orders")
    ensure_state_topics(kafka_bootstrap, [state_topic])
    watcher = StateWatcher(kafka_bootstrap, state_topic)
    run = Extraction(config, logs=tmp_path / "logs")
    try:
        deadline = time.monotonic() + 90
        while watcher.seen["orders"] < 2:
            assert run.running(), run.result().describe()
            assert time.monotonic() < deadline, "no two committed batches in 90s"
            watcher.poll(0.05)
        assert server.stop(), "the server was not running"
        batches_when_stopped = watcher.seen["orders"]
        time.sleep(DOWN_SECONDS)
        assert run.running(), run.result().describe()  # waiting, not dead
        server.ensure_running()
        result = run.wait(150)
        watcher.poll(1.0)
    finally:
        watcher.close()
        if run.running():
            run.kill()
    assert result.returncode == 0, result.describe()
    assert watcher.seen["orders"] > batches_when_stopped + 1, "the table ended before the stop"
    assert "retrying after the last committed batch" in result.stderr, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    active = ids(read_committed(kafka_bootstrap, topics.active(name, "orders")))
    dlq = ids(read_committed(kafka_bootstrap, topics.dlq(name, "orders")))
    both = active + dlq
    assert not duplicates(both), f"rows doubled: {duplicates(both)}"
    assert set(active) == {i for i in range(1, ROWS + 1) if is_valid(i)}
    assert set(dlq) == {i for i in range(1, ROWS + 1) if not is_valid(i)}
