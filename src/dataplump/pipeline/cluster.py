"""Which Kafka a pipeline talks to: the cluster its file names, or the managed local broker."""

from __future__ import annotations

from collections.abc import Callable

from dataplump.config import PipelineConfig
from dataplump.services.kafka import KafkaManager


def bootstrap_for(
    config: PipelineConfig, *, start: bool = True, say: Callable[[str], None] = lambda _: None
) -> str:
    """The bootstrap address to use; starts the managed broker if needed and ``start``.

    With ``kafka.bootstrap_servers`` set, that cluster is used and nothing is started.
    ``say`` receives one line when DataPlump starts the broker itself.
    """
    kafka = config.kafka
    if not kafka.is_managed:
        assert kafka.bootstrap_servers is not None
        return kafka.bootstrap_servers
    manager = KafkaManager(kafka.managed.data_dir, port=kafka.managed.port)
    if start:
        info = manager.up()
        if not info.already_running:
            say(
                f"started the managed Kafka broker at {info.bootstrap} in {info.seconds:.1f}s "
                f"(stop it with `dataplump kafka down -c FILE`)"
            )
    return f"127.0.0.1:{manager.port}"
