"""A customer inserted after the reference was loaded, on the real PostgreSQL server and
on SQLite: its order misses it (relationships, and NULLs from the SQL join), the
reference is reloaded on the miss, and the order then passes. A customer that exists
nowhere still fails with the same reasons, and the reloads it causes are rate-limited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dataplump.config import PipelineConfig
from dataplump.engine import ReferenceCopies, ReferenceTables, TableTransform

JOIN = "SELECT o.*, c.name FROM batch o LEFT JOIN customers c ON c.id = o.customer_id"
OUTPUT = {
    "columns": {
        "id": "int64",
        "customer_id": "int64",
        "name": {"type": "string", "not_null": True},
    },
    "rules": [{"relationships": {"column": "customer_id", "to": "customers", "field": "id"}}],
}
MISSING = [
    {
        "rule": "not_null",
        "column": "name",
        "value": None,
        "message": "is null",
    },
    {
        "rule": "relationships",
        "column": "customer_id",
        "value": "99",
        "message": "is not in reference table customers.id",
    },
]


class Clock:
    """Monotonic and wall clocks that tests move by hand (sleeping moves them)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_750_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture(params=["postgres", "sqlite"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, sa.Engine]]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(sa.text("INSERT INTO customers VALUES (10, 'Ada'), (20, 'Bob')"))
    yield url, engine
    engine.dispose()


def config(url: str) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "pipeline": {"name": "shop"},
            "source": {"url": url},
            "tables": {
                "orders": {"primary_key": "id", "output_contract": OUTPUT},
                "customers": {"primary_key": "id"},
            },
            "transform": {
                "references": {"customers": {"table": "customers", "min_refresh_seconds": 2}},
                "steps": {"orders": [{"sql": JOIN}]},
            },
        }
    )


class Stage:
    """What the transform stage does per batch: steps, output contract, and on failures
    a reload of stale references and one redo."""

    def __init__(self, cfg: PipelineConfig, clock: Clock) -> None:
        self.references = ReferenceTables(
            cfg, clock=clock, wall_clock=clock.wall, sleep=clock.sleep
        )
        self.transform = TableTransform.from_config(cfg, "orders", self.references)
        contract = cfg.output_contract("orders")
        assert contract is not None
        self.contract = contract
        self.clock = clock

    def check(self, batch: pa.Table) -> list[tuple[int, list[dict[str, Any]]]]:
        output = self.transform.apply(batch).output
        tables = {"customers": self.references.get("customers")}
        return list(self.contract.check(output, references=tables).rejections())

    def run(self, batch: pa.Table, extracted_at: float) -> tuple[list[Any], bool]:
        used: ReferenceCopies = self.references.copies(self.transform.reference_names)
        self.clock.now += 0.01
        failed = self.check(batch)
        if failed and self.references.refresh_stale(used, extracted_at=extracted_at):
            return self.check(batch), True
        return failed, False


def test_a_customer_inserted_after_the_load_is_found_on_the_miss(
    database: tuple[str, sa.Engine],
) -> None:
    url, engine = database
    clock = Clock()
    stage = Stage(config(url), clock)
    first = pa.table({"id": [1, 2], "customer_id": [10, 20]})
    assert stage.run(first, clock.wall()) == ([], False)  # loads the reference

    clock.now += 0.5
    with engine.begin() as conn:  # a new customer and, just after, its order
        conn.execute(sa.text("INSERT INTO customers VALUES (30, 'Cy')"))
    extracted = clock.wall()
    clock.now += 0.1
    failed, redone = stage.run(pa.table({"id": [3], "customer_id": [30]}), extracted)
    assert (failed, redone) == ([], True)
    assert stage.references.reloads_on_miss == {"customers": 1}
    assert clock.sleeps == [1.39]  # the turn came 2 s after the first load

    # a customer that exists nowhere: one reload per 2 s at most, then the same reasons
    for n in range(3):
        clock.now += 0.2
        extracted = clock.wall()
        failed, redone = stage.run(pa.table({"id": [4 + n], "customer_id": [99]}), extracted)
        assert failed == [(0, MISSING)]
        assert redone  # reloaded and redone: still missing
    assert stage.references.reloads_on_miss == {"customers": 4}
    assert clock.sleeps[1:] == [1.79, 1.79, 1.79]
    # rows extracted before the last reload: the miss is real, no reload
    failed, redone = stage.run(pa.table({"id": [9], "customer_id": [99]}), clock.wall() - 5)
    assert (failed, redone) == ([(0, MISSING)], False)
    assert stage.references.reloads_on_miss == {"customers": 4}
    stage.transform.close()
