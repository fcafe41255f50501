"""Memory stays flat however large the table: RSS grows by a bounded amount while a
~240 MB table is read in 1,000-row batches (the batches are dropped as they come)."""

from __future__ import annotations

import gc

import psutil  # type: ignore[import-untyped]
import pytest

from tests.integration.sources.conftest import Db

ROWS = 400_000
PAD = 600  # bytes of text per row: ~240 MB of table
FILL = {
    "postgres": "INSERT INTO wide SELECT g, repeat(md5(g::text), 19) FROM generate_series(1, :n) g",
    "mariadb": "INSERT INTO wide SELECT seq, repeat(md5(seq), 19) FROM seq_1_to_{n}",
}
KINDS = [
    pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow], id="pg"),
    pytest.param("mariadb", marks=[pytest.mark.mariadb, pytest.mark.slow], id="mariadb"),
]


@pytest.mark.integration
@pytest.mark.parametrize("kind", KINDS)
def test_rss_stays_flat_while_reading_a_large_table(
    kind: str, request: pytest.FixtureRequest
) -> None:
    db = Db(kind, request.getfixturevalue(f"{kind}_url"))
    db.run("CREATE TABLE wide (id INTEGER NOT NULL PRIMARY KEY, pad TEXT)")
    fill = FILL[kind]
    db.run(fill.format(n=ROWS) if kind == "mariadb" else fill, params=[{"n": ROWS}])
    process = psutil.Process()
    with db.open("wide", primary_key="id", batch_size=1_000) as source:
        with source.read() as read:  # warm up: connections, first batches, allocator
            for _ in range(20):
                next(read)
        gc.collect()
        start = process.memory_info().rss
        peak = rows = 0
        with source.read() as read:
            for batch in read:
                rows += batch.num_rows
                peak = max(peak, process.memory_info().rss)
    db.engine.dispose()
    assert rows == ROWS
    grown = (peak - start) / 2**20
    assert grown < 80, f"RSS grew by {grown:.0f} MB reading {ROWS * PAD / 2**20:.0f} MB"
