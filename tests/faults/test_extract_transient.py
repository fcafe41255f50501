"""A transient source error in the middle of a table: the stage retries, and no row doubles.

docs/extract.md: "A transient error (broker restarting, connection reset) makes the stage
retry from the last committed batch". Here PostgreSQL itself ends the extractor's
connection (``pg_terminate_backend``, as a server restart or failover does) after two
committed batches, while the rest of the table is still streaming.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dataplump.config import load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor, TableCounts
from tests.support.extraction import (
    OrdersDb,
    fill_wide_orders,
    is_valid,
    orders_contract,
    write_pipeline,
)
from tests.support.topics import duplicates, ids, read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

ROWS = 100_000
"""Wide rows (a 200-character note): about 25 MB, so the COPY stream is still running
when the connection is cut (the driver decodes it in chunks of 4 MiB)."""
BATCH = 5_000


@pytest.fixture
def wide_orders(postgres_url: str) -> Iterator[OrdersDb]:
    db = OrdersDb("postgres", postgres_url)
    db.create()
    fill_wide_orders(db, ROWS)
    yield db
    db.close()


def cut_connections_once(url: str) -> tuple[list[int], Callable[[TableCounts], None]]:
    """A progress callback that, after the second committed batch, has PostgreSQL end every
    other connection to the database (the extractor's streaming read among them)."""
    cut: list[int] = []
    engine = sa.create_engine(url, poolclass=NullPool)

    def progress(counts: TableCounts) -> None:
        if counts.batches == 2 and not cut and counts.finished is None:
            with engine.connect() as conn:
                ended = conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).all()
            cut.append(len(ended))

    return cut, progress


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_a_connection_cut_mid_table_is_retried_without_doubling_rows(
    tmp_path: Path, kafka_bootstrap: str, wide_orders: OrdersDb, mode: str
) -> None:
    table: dict[str, object] = {
        "primary_key": "id",
        "mode": mode,
        "batch_size": BATCH,
        "contract": orders_contract("postgres"),
    }
    if mode == "incremental":
        table["cursor"] = "updated_at"
    file = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=f"cut{uuid.uuid4().hex[:8]}",
        url=wide_orders.url,
        bootstrap=kafka_bootstrap,
        tables={"orders": table},
    )
    config = load_config(file)
    cut, progress = cut_connections_once(wide_orders.url)

    [counts] = Extractor(config, kafka_bootstrap, on_progress=progress).run_once()

    assert cut, "the table ended before its second batch"
    assert cut[0] >= 1, "no connection of the extractor was open to cut"
    assert counts.retries == 1, "the cut did not reach the read"
    active = ids(read_committed(kafka_bootstrap, topics.active(config.name, "orders")))
    dlq = ids(read_committed(kafka_bootstrap, topics.dlq(config.name, "orders")))
    both = active + dlq
    assert not duplicates(both), (
        f"{sum(n - 1 for n in both.values())} rows doubled, e.g. {duplicates(both)}"
    )
    assert set(active) == {i for i in range(1, ROWS + 1) if is_valid(i)}
    assert set(dlq) == {i for i in range(1, ROWS + 1) if not is_valid(i)}
