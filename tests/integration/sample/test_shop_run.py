"""The issue's acceptance run: `dataplump sample create` at 100,000 orders, then
`dataplump run --once` with examples/shop as a user runs them. Every injected fault is
in `_dlq` or `_failed` under its rule, the curated tables hold exactly the valid rows
(counted with independent SQL on the source), and the ledger balances."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from dataplump.sample.manifest import Manifest
from dataplump.sample.schema import TABLES
from tests.support.cli import run_command
from tests.unit.sample.sql import valid_rows

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

EXAMPLE = Path(__file__).parents[3] / "examples" / "shop" / "dataplump.yaml"
ORDERS = 100_000


@pytest.mark.timeout(900)
def test_run_once_on_the_sample_accounts_for_every_fault(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    db = tmp_path / "shop.db"
    url = f"sqlite:///{db}"
    logs = tmp_path / "logs"
    created = run_command(
        "sample", "create", "--url", url, "--rows", str(ORDERS), "--seed", "5", "--json",
        logs=logs, cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.describe()
    manifest = Manifest.from_dict(json.loads(created.stdout))
    lake = tmp_path / "lake"
    overrides = {
        "DATAPLUMP__PIPELINE__NAME": f"shop{uuid.uuid4().hex[:8]}",
        "DATAPLUMP__SOURCE__URL": url,
        "DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATAPLUMP__SINKS__LAKE__PATH": str(lake),
    }
    done = run_command(
        "run", "-c", str(EXAMPLE), "--once", "--metrics-port", "0",
        logs=logs, cwd=tmp_path, timeout=800, env=overrides,
    )  # fmt: skip
    assert done.returncode == 0, done.describe()
    print(f"\nrun --once on {ORDERS:,} orders took {done.seconds:.0f}s")

    dlq = pl.read_delta(str(lake / "_dlq")).select("table", "rules")
    failed = pl.read_delta(str(lake / "_failed")).select("table", "rules")
    landed = Counter(zip(dlq["table"], dlq["rules"], strict=True)) + Counter(
        zip(failed["table"], failed["rules"], strict=True)
    )
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for name in TABLES:
            table = manifest.tables[name]
            expected = Counter({(name, r): n for r, n in table.by_rule("dlq").items()})
            expected.update({(name, r): n for r, n in table.by_rule("failed").items()})
            assert {k: v for k, v in landed.items() if k[0] == name} == dict(expected), name
            curated = pl.read_delta(str(lake / name), columns=["id"])
            assert curated.height == valid_rows(conn, name) == table.curated, name
            assert curated["id"].n_unique() == curated.height, name
    engine.dispose()
    status = run_command(
        "status", "-c", str(EXAMPLE), "--json", logs=logs, cwd=tmp_path, env=overrides
    )
    assert status.returncode == 0, status.describe()
    assert all(t["gap"] == 0 for t in json.loads(status.stdout)["tables"].values())
