"""One broker of a 3-node Kafka cluster dies under ``dataplump run``: nothing lost or doubled.

The cluster is started by the test from the project's Kafka jars
(:class:`tests.support.kafka_cluster.KafkaCluster`): three KRaft nodes on 127.0.0.1,
each broker and controller, one 3-voter quorum; internal topics replicated three times
with ``min.insync.replicas=2``. The pipeline file asks for
``kafka.topic.replication_factor: 3``, and the test checks that every topic the
pipeline created has three replicas. While the whole pipeline runs on a growing source,
one broker's JVM is killed with SIGKILL (no controlled shutdown) and stays dead. The
guarantee proved: with two of three replicas left, every write still has its in-sync
quorum, so ``run`` carries on (clients move to the new leaders and coordinators) and ends
with every source row exactly once in the curated table, the dead-letter store or the
failed store, the ledger of ``dataplump status --json`` at gap 0 and nothing in flight.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.support.faulted_run import Feeder, Shop, check_exactly_once, faulted_run
from tests.support.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """Three nodes of this test alone (killed at the end, pass or fail)."""
    with KafkaCluster(tmp_path / "cluster", nodes=3, min_insync=2) as started:
        yield started


def replicas_of(bootstrap: str, prefix: str) -> dict[str, set[int]]:
    """Topic -> the replica counts of its partitions, for the topics named ``prefix*``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=10).topics
    return {
        name: {len(p.replicas) for p in meta.partitions.values()}
        for name, meta in topics.items()
        if name.startswith(prefix)
    }


@pytest.mark.timeout(180)
def test_run_survives_a_killed_broker_of_three(
    tmp_path: Path, cluster: KafkaCluster, seed: int
) -> None:
    victim = random.Random(seed).choice(sorted(cluster.nodes))
    shop = Shop(tmp_path / "shop", cluster.bootstrap, replicas=3)
    shop.add(1000)
    with faulted_run(shop) as faulted:
        created = replicas_of(cluster.bootstrap, shop.name)
        with Feeder(shop, chunk=100, every=0.5):
            time.sleep(2)  # every stage has batches in hand now
            cluster.kill(victim)
            faulted.note(
                f"SIGKILL broker {victim} (source at {shop.rows}, lake at {len(shop.lake_ids())})"
            )
            time.sleep(8)
    report, result = f"seed {seed}; " + faulted.report(), faulted.result
    print(report)
    assert created, f"no topics of {shop.name} ({report})"
    assert {name: sizes for name, sizes in created.items() if sizes != {3}} == {}, report
    assert result.returncode == 130, report
    got = check_exactly_once(shop, report)
    print(f"broker {victim} of 3 killed: {got}")
