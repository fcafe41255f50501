"""``create_sample`` on SQLite: deterministic per seed, and every count of the manifest
is what independent SQL finds in the database."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.sample import FAULTS, Manifest, SampleError, create_sample, default_manifest_path
from dataplump.sample.create import build_tables
from dataplump.sample.faults import FaultContext, inject
from dataplump.sample.schema import TABLES
from tests.unit.sample.sql import fault_counts, valid_rows

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    first, counts = build_tables(500, 0.1, 3, NOW)
    again, counts_again = build_tables(500, 0.1, 3, NOW)
    other, _ = build_tables(500, 0.1, 4, NOW)
    for name in TABLES:
        assert first[name].equals(again[name]), name
    assert counts == counts_again
    assert not first["customers"].equals(other["customers"])


@pytest.mark.parametrize("dirty", [0.0, 0.05, 0.3])
def test_manifest_counts_are_in_the_database(tmp_path: Path, dirty: float) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    manifest = create_sample(url, orders=2000, dirty=dirty, seed=5)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for name in TABLES:
            table = manifest.tables[name]
            total = conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar()  # noqa: S608
            assert total == table.rows
            assert fault_counts(conn, name) == {f.kind: f.rows for f in table.faults}, name
            assert valid_rows(conn, name) == table.curated, name
            assert table.faulty == round(dirty * table.rows), name
    engine.dispose()


def test_kinds_share_the_faulty_rows_equally() -> None:
    tables, counts = build_tables(20_000, 0.05, 1, NOW)
    for name in TABLES:
        rows = list(counts[name].values())
        assert sum(rows) == round(0.05 * tables[name].num_rows)
        assert max(rows) - min(rows) <= 3, (name, counts[name])  # duplicates come in pairs
        assert counts[name].get("duplicate_key", 0) % 2 == 0


def test_each_faulty_row_has_one_fault_and_clean_rows_none() -> None:
    tables, _ = build_tables(1000, 0.0, 2, NOW)
    orders = tables["orders"]
    injected = inject("orders", orders, 0.5, np.random.default_rng(0), FaultContext(NOW))
    changed = [
        i
        for i in range(orders.num_rows)
        if orders.slice(i, 1).to_pylist() != injected.table.slice(i, 1).to_pylist()
    ]
    faulty = np.flatnonzero(injected.kinds >= 0)
    assert sorted(changed) == sorted(faulty.tolist())
    assert len(faulty) == 500


def test_no_fault_without_dirt() -> None:
    tables, counts = build_tables(300, 0.0, 9, NOW)
    assert all(n == 0 for table in counts.values() for n in table.values())
    emails = tables["customers"].column("email").to_pylist()
    assert len(set(emails)) == len(emails)
    assert all(e == e.lower().strip() and "@" in e for e in emails)


def test_timestamps_are_before_now_and_items_follow_orders() -> None:
    tables, _ = build_tables(300, 0.0, 9, NOW)
    now = pa.scalar(NOW.replace(tzinfo=None), pa.timestamp("us"))
    for name in TABLES:
        updated = tables[name].column("updated_at")
        assert pa.compute.all(pa.compute.less(updated, now)).as_py(), name
        created = tables[name].column("created_at")
        assert pa.compute.all(pa.compute.less_equal(created, updated)).as_py(), name
    items = tables["order_items"]
    assert set(items.column("order_id").to_pylist()) == set(range(1, 301))


def test_100k_orders_in_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    manifest = create_sample(f"sqlite:///{tmp_path / 'big.db'}", orders=100_000, seed=1)
    seconds = time.monotonic() - started
    assert manifest.tables["orders"].rows == 100_000
    assert manifest.tables["order_items"].rows > 250_000
    assert seconds < 45, f"{seconds:.1f}s"  # ~10 s on the shared 2-CPU machine


def test_existing_tables_need_replace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_sample(url, orders=50, seed=1)
    with pytest.raises(SampleError, match="pass --replace"):
        create_sample(url, orders=50, seed=1)
    manifest = create_sample(url, orders=80, seed=1, replace=True)
    assert manifest.tables["orders"].rows == 80


def test_bad_url_and_arguments() -> None:
    with pytest.raises(SampleError, match="not a SQLAlchemy URL"):
        create_sample("no url", orders=5)
    with pytest.raises(SampleError, match="--dirty"):
        create_sample("sqlite://", orders=5, dirty=2)


def test_manifest_round_trip_and_default_path(tmp_path: Path) -> None:
    manifest = create_sample(f"sqlite:///{tmp_path / 'a.db'}", orders=100, seed=1, now=NOW)
    path = tmp_path / "m.json"
    manifest.write(path)
    again = Manifest.read(path)
    assert again.tables == manifest.tables
    data = json.loads(path.read_text())
    orders = data["tables"]["orders"]
    assert orders["expected"]["curated"] == manifest.tables["orders"].curated
    assert data["now"] == "2026-06-01T12:00:00+00:00"
    assert default_manifest_path("sqlite:///data/shop.db") == Path("data/shop.manifest.json")
    assert default_manifest_path("postgresql+psycopg://u:p@h/shop") == Path("shop.manifest.json")


def test_every_kind_names_who_catches_it() -> None:
    for name, faults in FAULTS.items():
        for fault in faults:
            if fault.catch.outcome == "cleaned":
                assert fault.catch.step in {"trim", "lowercase"}
            else:
                assert fault.catch.rule, (name, fault.kind)
                assert fault.column in fault.catch.rule, (name, fault.kind)


def test_cli_create_json_and_table(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    result = runner.invoke(app, ["sample", "create", "--url", url, "-n", "200", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["orders"] == 200
    assert (tmp_path / "shop.manifest.json").exists()
    again = runner.invoke(app, ["sample", "create", "--url", url, "-n", "200"])
    assert again.exit_code == 1
    assert "--replace" in again.output
    table = runner.invoke(
        app, ["sample", "create", "--url", url, "-n", "200", "--replace", "--now", "2026-01-02"]
    )
    assert table.exit_code == 0, table.output
    assert "order_items" in table.stdout
    assert "not_null(email)" in table.stdout
    help_text = runner.invoke(app, ["sample", "--help"]).stdout
    assert "create" in help_text
    assert "grow" in help_text
