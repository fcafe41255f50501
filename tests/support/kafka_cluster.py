"""A local Kafka cluster of several KRaft nodes for fault tests, from the project's own jars.

Each node is a :class:`~dataplump.services.kafka.KafkaManager` (broker and controller in
one JVM, its own data dir and ports) that is one voter of a shared quorum
(:class:`~dataplump.services.kafka.QuorumMember`): with three nodes, one can die and the
quorum, the leaders and ``min.insync.replicas=2`` writes carry on with the other two.

Example::

    with KafkaCluster(tmp_path / "cluster", nodes=3) as cluster:
        bootstrap = cluster.bootstrap   # 127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3
        cluster.kill(2)                 # SIGKILL node 2's JVM
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from dataplump.services.kafka import KafkaManager, QuorumMember, free_port, new_cluster_id

HEAP = "512m"
"""Per node: three JVMs share a small machine with the pipeline."""


class KafkaCluster:
    """``nodes`` KRaft nodes on 127.0.0.1, every internal topic replicated to all (at most 3)."""

    def __init__(self, root: Path, *, nodes: int = 3, min_insync: int = 2) -> None:
        self.replicas = min(nodes, 3)
        ports = [free_port() for _ in range(nodes)]
        controllers = [free_port() for _ in range(nodes)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(controllers))
        cluster_id = new_cluster_id()
        replicas, isr = str(self.replicas), str(min(min_insync, self.replicas))
        self.nodes: dict[int, KafkaManager] = {}
        for i, (port, controller) in enumerate(zip(ports, controllers, strict=True)):
            node_id = i + 1
            self.nodes[node_id] = KafkaManager(
                root / f"node{node_id}",
                port=port,
                heap=HEAP,
                quorum=QuorumMember(node_id, controller, voters, cluster_id),
                extra_properties={
                    "default.replication.factor": replicas,
                    "min.insync.replicas": isr,
                    "offsets.topic.replication.factor": replicas,
                    "transaction.state.log.replication.factor": replicas,
                    "transaction.state.log.min.isr": isr,
                    "share.coordinator.state.topic.replication.factor": replicas,
                    "share.coordinator.state.topic.min.isr": isr,
                },
            )

    @property
    def bootstrap(self) -> str:
        """Every node's address, for clients (any one of them answering is enough)."""
        return ",".join(f"127.0.0.1:{m.port}" for m in self.nodes.values())

    def start(self, timeout: float = 120.0) -> None:
        """Start every node, then wait until each answers and all brokers are registered."""
        deadline = time.monotonic() + timeout
        for manager in self.nodes.values():
            manager.install()
            manager.up(wait=False)
        for manager in self.nodes.values():
            manager.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
        self.wait_for_brokers(len(self.nodes), deadline - time.monotonic())

    def wait_for_brokers(self, count: int, timeout: float) -> None:
        """Wait until the cluster's metadata lists ``count`` live brokers."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            try:
                seen = len(admin.list_topics(timeout=2).brokers)
            except KafkaException:
                seen = 0
            if seen == count:
                return
            time.sleep(0.5)
        raise AssertionError(f"{seen} of {count} Kafka brokers registered after {timeout:.0f}s")

    def kill(self, node_id: int) -> None:
        """SIGKILL one node's JVM (no controlled shutdown, nothing flushed)."""
        assert self.nodes[node_id].kill(), f"node {node_id} was not running"

    def stop(self) -> None:
        """Kill every node that still runs (a test's teardown: the data dirs are thrown away)."""
        for manager in self.nodes.values():
            manager.kill()

    def __enter__(self) -> KafkaCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
