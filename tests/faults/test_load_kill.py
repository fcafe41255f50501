"""Exactly once under ``kill -9``: ``dataplump load --once`` killed at random moments.

The design's promise for the last leg: every sink commits a poll's rows with their Kafka
offsets in its own commit (a Delta commit with ``txn`` actions, one PostgreSQL
transaction), and a restart seeks to the lowest offset its sinks hold, each sink dropping
what it already has. So after a SIGKILL anywhere (between two sinks' commits, inside a
Delta write, in the middle of a COPY) a restart ends with every processed order exactly
once in the curated table of every sink, and every DLQ and failed record once in
``_dlq`` and ``_failed``. Append mode is where a replayed poll would show as duplicates.

The kill moments come from a seeded random generator; the seed is printed and
``DATAPLUMP_KILL_SEED=<seed>`` replays a run; ``DATAPLUMP_KILL_POINTS`` sets how many
kills per test (default 10: the stage's three tests make 30 kill points). Most kills
wait until the curated Delta table got more commits and then a random extra delay, so
the process dies anywhere in a poll's life; some land blind, during start-up or the
first two polls (never later: a run must not drain the topics before the kills are
made). The merge test runs on rows and on frames (``kafka.topic.framing: arrow``: many
rows share a record, so an offset).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.killer import DeltaCommits, Killer, Pace
from tests.support.loading import (
    Loadable,
    Loading,
    check_lake,
    check_warehouse,
    loadable,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 20_000
KILLS = int(os.environ.get("DATAPLUMP_KILL_POINTS") or 10)
POLL = 150
ARGS = ("--once", "--max-records", str(POLL))
"""Records per poll (one commit per sink and table each): ~130 polls to die in. An
append poll takes ~20 ms here, a merge into both sinks more: a kill comes 1-4 commits
and up to 100 ms after the last, so the kills take ~50 of them."""
TEST_BUDGET = 60.0 + 15.0 * KILLS
"""Seconds a test may take (after the topics are filled) before it is failed as hung."""
PACE = Pace(blind=0.2, blind_within=4.0, early=2, steps=4, extra=0.1, tick=0.01, patience=40)
"""Most kills 1-4 commits and up to 100 ms after the last; a fifth blind, in the start-up
or the first two polls."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Loadable:
    """20k orders on the topics, shared by the tests (each loads into its own sinks)."""
    return loadable(tmp_path_factory.mktemp("orders"), kafka_bootstrap, ROWS)


@pytest.fixture(scope="module")
def framed(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Loadable:
    """The same orders with ``kafka.topic.framing: arrow``: frames of about 100 rows on
    ``.processed`` (source batches of 200, two partitions), so a poll of 150 rows holds
    one frame and a kill can land between any two."""
    folder = tmp_path_factory.mktemp("framed")
    return loadable(folder, kafka_bootstrap, ROWS, batch_size=200, framing="arrow")


def load_killer(config: Path, table: Path, seed: int, logs: Path) -> Killer[Loading]:
    """Runs ``dataplump load --once`` and SIGKILLs it at seeded random moments, watching
    the commits of the curated Delta table ``table``."""
    return Killer(
        lambda label: Loading(config, *ARGS, logs=logs, label=label),
        DeltaCommits(table),
        PACE,
        seed,
        TEST_BUDGET,
    )


def kill_then_load(killer: Killer[Loading]) -> int:
    """Kill ``KILLS`` runs (fewer if one drains everything first), then load to the end."""
    kills = 0
    while kills < KILLS:
        if killer.kill_at_random(killer.start()):
            kills += 1
        else:
            break  # drained: everything is loaded, no moment left to die in
    killer.final("loaded (run")
    print(killer.report())
    return kills


@pytest.mark.timeout(TEST_BUDGET + 120)
@pytest.mark.parametrize("framing", ["data", "framed"], ids=["row", "arrow"])
def test_load_into_lake_and_warehouse_survives_kill_9(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    framing: str,
    postgres_url: str,
    seed: int,
) -> None:
    data: Loadable = request.getfixturevalue(framing)
    lake = tmp_path / "lake"
    sinks = {
        "lake": {"kind": "delta", "path": str(lake), "mode": "merge"},
        "warehouse": {"kind": "postgres", "url": postgres_url, "mode": "merge"},
    }
    path = data.pipeline(tmp_path, sinks, table_sinks=["lake", "warehouse"])
    killer = load_killer(path, lake / "orders", seed, tmp_path / "logs")
    kills = kill_then_load(killer)
    assert kills == KILLS, killer.report()  # the data is sized so no run drains it first
    check_lake(lake, data, killer.report())
    check_warehouse(postgres_url, data, killer.report())


@pytest.mark.timeout(TEST_BUDGET + 120)
def test_append_to_lake_survives_kill_9(tmp_path: Path, data: Loadable, seed: int) -> None:
    lake = tmp_path / "lake"
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(lake), "mode": "append"}})
    killer = load_killer(path, lake / "orders", seed, tmp_path / "logs")
    kills = kill_then_load(killer)
    assert kills == KILLS, killer.report()  # the data is sized so no run drains it first
    check_lake(lake, data, killer.report())  # append: a poll loaded twice shows as duplicates
