"""The notifier's wiring without Kafka: where it connects, its topics, its channels."""

from __future__ import annotations

from typing import Any

import pytest

from dataplump.config.models import PipelineConfig
from dataplump.notify import LoggingChannel, Notifier, alert_topic, state_topic
from dataplump.notify.service import notify_group


def config(**sections: Any) -> PipelineConfig:
    data = {
        "pipeline": {"name": "shop"},
        "source": {"url": "sqlite:///demo.db"},
        "tables": {"orders": {"primary_key": "id"}},
        **sections,
    }
    return PipelineConfig.model_validate(data)


def test_managed_broker_address_when_no_bootstrap_servers() -> None:
    notifier = Notifier.from_config(config(kafka={"managed": {"port": 19092}}))
    assert notifier.bootstrap == "127.0.0.1:19092"
    assert notifier.kafka == {"security.protocol": "PLAINTEXT"}


def test_bootstrap_servers_and_override() -> None:
    sasl = {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "dp",
        "sasl_password": "pw",
        "extra": {"client.id": "dp-shop"},
        "topic": {"replication_factor": 3},
    }
    notifier = Notifier.from_config(config(kafka=sasl))
    assert notifier.bootstrap == "k1:9093,k2:9093"
    assert notifier.kafka["sasl.password"] == "pw"
    assert notifier.kafka["client.id"] == "dp-shop"
    assert "bootstrap.servers" not in notifier.kafka
    assert notifier.replication_factor == 3
    override = Notifier.from_config(config(kafka=sasl), bootstrap="127.0.0.1:1234")
    assert override.bootstrap == "127.0.0.1:1234"
    assert "bootstrap.servers" not in override.kafka


def test_topics_group_and_channels() -> None:
    notifier = Notifier.from_config(
        config(notify={"channels": [{"kind": "webhook", "url": "https://x.example.com/T"}]})
    )
    assert (notifier.topic, notifier.state_topic, notifier.group_id) == (
        "shop.alerts",
        "shop.notify.state",
        "shop.notify",
    )
    assert (alert_topic("shop"), state_topic("shop"), notify_group("shop")) == (
        "shop.alerts",
        "shop.notify.state",
        "shop.notify",
    )
    assert [c.name for c in notifier.channels] == ["log", "webhook"]
    assert "https://x.example.com" in notifier.describe()
    assert "/T" not in notifier.describe()


def test_channel_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="channel names must be unique"):
        Notifier("shop", "127.0.0.1:9092", [LoggingChannel(), LoggingChannel()])
