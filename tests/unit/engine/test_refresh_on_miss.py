"""Reloading a reference when rows miss it: freshness against the rows' extraction time,
the rate limit (with a fake clock), sharing between threads, failures, and the contract's
`relationships` rule passing once the reload found the key."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataplump.contracts import Contract
from dataplump.engine import (
    ReferenceTables,
    TableTransform,
    TransientReferenceLoadError,
)
from dataplump.engine.references import CLOCK_SKEW_SECONDS
from tests.unit.engine.helpers import pipeline

EPOCH = 1_750_000_000.0
"""What the fake wall clock says when the fake monotonic clock says 0."""


class Clock:
    """A monotonic clock, the wall clock beside it, and a sleep that moves both."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def write(path: Path, ids: list[int]) -> None:
    path.write_text("id,name\n" + "".join(f"{i},c{i}\n" for i in ids))


def references(tmp_path: Path, clock: Clock, **options: Any) -> ReferenceTables:
    write(tmp_path / "customers.csv", [1, 2])
    config = pipeline(tmp_path, [], references={"customers": {"csv": "customers.csv", **options}})
    return ReferenceTables(config, clock=clock, wall_clock=clock.wall, sleep=clock.sleep)


def ids(refs: ReferenceTables) -> list[int]:
    return [int(i) for i in refs.get("customers")["id"].to_pylist()]


def test_a_copy_older_than_the_rows_is_reloaded_after_its_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    refs = references(tmp_path, clock)
    assert ids(refs) == [1, 2]  # loaded at 1000
    write(tmp_path / "customers.csv", [1, 2, 3])  # customer 3 ...
    clock.now += 0.25
    extracted = clock.wall()  # ... then its order, extracted at 1000.25
    used = refs.copies(["customers"])  # the order's batch begins
    clock.now += 0.05
    with caplog.at_level(logging.INFO, logger="dataplump.engine.references"):
        newer = refs.refresh_stale(
            used, extracted_at=extracted, why="table `orders`: 1 row(s) failed"
        )
    assert newer == ["customers"]
    assert clock.sleeps == [0.7]  # one reload per second: waited for 1001
    assert ids(refs) == [1, 2, 3]
    assert refs.reloads_on_miss == {"customers": 1}
    assert refs.loaded_at("customers") == pytest.approx(1001.0)
    (line,) = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
    assert line.startswith(
        "reference `customers` reloaded on a miss (table `orders`: 1 row(s) failed): 3 rows in"
    )


def test_a_copy_newer_than_the_rows_is_kept(tmp_path: Path) -> None:
    clock = Clock()
    refs = references(tmp_path, clock)
    extracted = clock.wall() - CLOCK_SKEW_SECONDS - 0.001  # rows extracted before the load
    assert ids(refs) == [1, 2]
    clock.now += 5
    used = refs.copies(["customers"])
    write(tmp_path / "customers.csv", [1, 2, 3])
    assert refs.refresh_stale(used, extracted_at=extracted) == []  # the miss is real
    assert (clock.sleeps, refs.reloads_on_miss) == ([], {"customers": 0})
    # within the clock skew of the load, the rows may be newer than it: reloaded
    assert refs.refresh_stale(used, extracted_at=extracted + 0.002) == ["customers"]
    assert refs.reloads_on_miss == {"customers": 1}


def test_a_copy_first_loaded_during_the_batch_is_fresh(tmp_path: Path) -> None:
    clock = Clock()
    refs = references(tmp_path, clock)
    used = refs.copies(["customers"])  # nothing loaded yet
    clock.now += 0.01
    assert ids(refs) == [1, 2]  # the batch loads it
    assert refs.refresh_stale(used, extracted_at=None) == []
    assert refs.reloads_on_miss == {"customers": 0}


def test_an_absent_key_reloads_at_most_once_per_interval(tmp_path: Path) -> None:
    clock = Clock()
    refs = references(tmp_path, clock, min_refresh_seconds=2)
    ids(refs)
    for _ in range(5):  # live rows keep arriving with a key that is nowhere
        clock.now += 0.1
        used = refs.copies(["customers"])
        clock.now += 0.1
        assert refs.refresh_stale(used, extracted_at=clock.wall() - 0.1) == ["customers"]
    assert refs.reloads_on_miss == {"customers": 5}
    assert clock.sleeps == [1.8] * 5  # each waited for its turn: one reload per 2 s
    assert clock.now == pytest.approx(1000 + 5 * 2.0)
    # a batch of rows extracted before the last reload does not reload again
    used = refs.copies(["customers"])
    clock.now += 0.1
    assert refs.refresh_stale(used, extracted_at=clock.wall() - 3) == []
    assert refs.reloads_on_miss == {"customers": 5}


def test_refresh_on_miss_off(tmp_path: Path) -> None:
    clock = Clock()
    refs = references(tmp_path, clock, refresh_on_miss=False)
    ids(refs)
    used = refs.copies(["customers"])
    clock.now += 10
    assert refs.refresh_stale(used, extracted_at=clock.wall()) == []
    assert (clock.sleeps, refs.reloads_on_miss) == ([], {"customers": 0})


def test_a_reload_another_thread_did_counts(tmp_path: Path) -> None:
    clock = Clock()
    refs = references(tmp_path, clock)
    ids(refs)
    clock.now += 3
    first, second = refs.copies(["customers"]), refs.copies(["customers"])
    clock.now += 0.1
    assert refs.refresh_stale(first) == ["customers"]  # reloads
    assert refs.refresh_stale(second) == ["customers"]  # finds the newer copy: redo
    assert refs.reloads_on_miss == {"customers": 1}
    assert refs.refresh_stale(refs.copies(["customers"]), ["other"]) == []  # not used


def test_threads_share_one_reload(tmp_path: Path) -> None:
    write(tmp_path / "customers.csv", [1])
    config = pipeline(
        tmp_path,
        [],
        references={"customers": {"csv": "customers.csv", "min_refresh_seconds": 0.3}},
    )
    refs = ReferenceTables(config)
    refs.get("customers")
    time.sleep(0.05)
    used = refs.copies(["customers"])
    results: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(refs.refresh_stale(used))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["customers"]] * 4
    assert refs.reloads_on_miss == {"customers": 1}


def test_a_reload_that_fails_keeps_the_copy_and_waits_its_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    refs = references(tmp_path, clock)
    ids(refs)
    (tmp_path / "customers.csv").unlink()
    clock.now += 5
    with caplog.at_level(logging.WARNING, logger="dataplump.engine.references"):
        assert refs.refresh_stale(refs.copies(["customers"])) == []
    assert "the copy loaded before keeps serving" in caplog.text
    assert ids(refs) == [1, 2]
    clock.now += 0.5
    assert refs.refresh_stale(refs.copies(["customers"])) == []
    assert clock.sleeps == [0.5]  # the failed attempt counted for the rate limit


def test_a_reload_whose_database_is_down_is_transient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    refs = references(tmp_path, clock)
    ids(refs)

    def down(name: str, config: Any) -> pa.Table:
        raise TransientReferenceLoadError(f"reference `{name}`: the database is down")

    monkeypatch.setattr(refs, "_load", down)
    clock.now += 5
    with pytest.raises(TransientReferenceLoadError, match="the database is down"):
        refs.refresh_stale(refs.copies(["customers"]))
    assert ids(refs) == [1, 2]


CONTRACT = {
    "columns": {"id": "int64", "customer_id": "int64", "name": "string"},
    "rules": [{"relationships": {"column": "customer_id", "to": "customers", "field": "id"}}],
}


def test_relationships_miss_then_pass_after_the_reload(tmp_path: Path) -> None:
    """What the transform stage does: check, reload on the miss, check again."""
    clock = Clock()
    refs = references(tmp_path, clock)
    contract = Contract.from_config("orders", CONTRACT)
    batch = pa.table({"id": [10, 11, 12], "customer_id": [1, 3, 9], "name": ["a", "b", "c"]})

    def check() -> list[tuple[int, list[dict[str, Any]]]]:
        return list(
            contract.check(batch, references={"customers": refs.get("customers")}).rejections()
        )

    used = refs.copies(["customers"])
    clock.now += 0.1
    before = check()
    write(tmp_path / "customers.csv", [1, 2, 3])
    assert [row for row, _ in before] == [1, 2]
    clock.now += 2
    assert refs.refresh_stale(used, extracted_at=EPOCH + 999) == []  # loaded in the batch
    used = refs.copies(["customers"])
    clock.now += 0.1
    assert refs.refresh_stale(used, extracted_at=clock.wall()) == ["customers"]
    after = check()
    assert [row for row, _ in after] == [2]  # customer 9 is nowhere: the same reason
    assert (
        after[0][1]
        == before[1][1]
        == [
            {
                "rule": "relationships",
                "column": "customer_id",
                "value": "9",
                "message": "is not in reference table customers.id",
            }
        ]
    )


def test_a_transform_lists_the_references_its_sql_reads(tmp_path: Path) -> None:
    write(tmp_path / "customers.csv", [1])
    write(tmp_path / "products.csv", [1])
    config = pipeline(
        tmp_path,
        [
            {"trim": ["status"]},
            {"sql": "SELECT o.* FROM batch o LEFT JOIN Customers c ON c.id = o.customer_id"},
        ],
        references={"customers": {"csv": "customers.csv"}, "products": {"csv": "products.csv"}},
    )
    assert TableTransform.from_config(config, "orders").reference_names == {"customers"}
    no_sql = pipeline(tmp_path, [{"trim": ["status"]}], references={"p": {"csv": "products.csv"}})
    assert TableTransform.from_config(no_sql, "orders").reference_names == frozenset()
