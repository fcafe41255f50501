"""The Kafka broker goes away under ``dataplump run`` and comes back: nothing lost or doubled.

The whole pipeline (extract, transform, load, notify as ``run`` supervises them) works
on a source that keeps growing, against a broker of this test's own (a
:class:`~dataplump.services.kafka.KafkaManager` on a free port with its own data dir).
Mid-run the broker is stopped — a clean stop (SIGTERM, controlled shutdown) or a
SIGKILL of its JVM — while the source keeps growing, and started again a few seconds
later on the same port and data dir. The guarantee proved: ``run`` carries on (its
stages retry, or its supervisor restarts them) and ends with every source row exactly
once in the curated table, the dead-letter store or the failed store, with the
row-accounting ledger of ``dataplump status --json`` at gap 0 and nothing in flight;
and the outage was told to the user, not passed over in silence.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplump.services.kafka import KafkaManager, free_port
from tests.support.faulted_run import Feeder, Shop, check_exactly_once, faulted_run

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

OUTAGE = 6.0
"""Seconds the broker stays away."""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[KafkaManager]:
    """A broker of this test alone: it is stopped and started under the pipeline."""
    manager = KafkaManager(tmp_path / "kafka", port=free_port(), heap="512m")
    manager.install()
    manager.up()
    try:
        yield manager
    finally:
        manager.kill()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_run_survives_a_broker_restart(tmp_path: Path, broker: KafkaManager, how: str) -> None:
    shop = Shop(tmp_path / "shop", f"127.0.0.1:{broker.port}")
    shop.add(1000)
    with faulted_run(shop) as faulted, Feeder(shop, chunk=100, every=0.5):
        time.sleep(2)  # every stage has batches in hand now
        before = len(faulted.run.output.splitlines())
        loaded_before = len(shop.lake_ids())
        if how == "stop":
            assert broker.down(timeout=30), "the broker was not running"
        else:
            assert broker.kill(), "the broker was not running"
        faulted.note(f"broker {how} (source at {shop.rows} rows, lake at {loaded_before})")
        time.sleep(OUTAGE)
        info = broker.up()
        faulted.note(f"broker up again in {info.seconds:.1f}s (source at {shop.rows} rows)")
        time.sleep(3)
    told = faulted.output.splitlines()[before:]
    report, result = faulted.report(), faulted.result
    print(report)
    assert result.returncode == 130, report
    got = check_exactly_once(shop, report)
    print(f"broker {how}: {got}")
    # The outage is told: at least one line about Kafka while it was away.
    assert any("kafka" in line.lower() or "broker" in line.lower() for line in told), report
