"""Extraction against a Kafka cluster that requires a SASL login (``kafka.security_protocol``).

The broker is the project's own managed broker with a second listener,
``SASL_PLAINTEXT`` with the ``PLAIN`` mechanism (users in its JAAS config); the
test reads results back through its ``PLAINTEXT`` listener.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataplump.pipeline import topics
from dataplump.services.kafka import KafkaManager, free_port
from tests.support.cli import CliResult
from tests.support.extraction import (
    OrdersDb,
    is_valid,
    orders_table,
    run_extract,
    write_pipeline,
)
from tests.support.topics import ids, read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

USER, PASSWORD = "dp", "dp-Sasl-S3cret"
ROWS = 100
BOUND = 20.0
"""Seconds within which a refused login must be reported."""


@dataclass(frozen=True)
class SaslBroker:
    plaintext: str
    """Bootstrap of the PLAINTEXT listener (for the test's own reads)."""
    sasl: str
    """Bootstrap of the SASL_PLAINTEXT listener (for the pipeline)."""


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    port, sasl_port, controller = free_port(), free_port(), free_port()
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        ' username="admin" password="admin-secret"'
        f' user_admin="admin-secret" user_{USER}="{PASSWORD}";'
    )
    manager = KafkaManager(
        tmp_path_factory.mktemp("sasl-kafka"),
        port=port,
        extra_properties={
            "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
            f"CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
            ),
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        },
    )
    manager.install()
    manager.up()
    yield SaslBroker(f"127.0.0.1:{port}", f"127.0.0.1:{sasl_port}")
    manager.down()


def sasl_pipeline(tmp_path: Path, url: str, broker: SaslBroker, password: str) -> Path:
    file = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=f"sasl{uuid.uuid4().hex[:8]}",
        url=url,
        bootstrap=broker.sasl,
        tables={"orders": orders_table("sqlite", mode="full", batch_size=50)},
    )
    text = file.read_text().replace(
        f'"bootstrap_servers": "{broker.sasl}"',
        f'"bootstrap_servers": "{broker.sasl}", "security_protocol": "SASL_PLAINTEXT",'
        f' "sasl_mechanism": "PLAIN", "sasl_username": "{USER}", "sasl_password": "{password}"',
    )
    assert text != file.read_text()
    file.write_text(text)
    return file


@pytest.fixture
def orders(sqlite_url: str) -> Iterator[OrdersDb]:
    db = OrdersDb("sqlite", sqlite_url)
    db.create()
    db.insert(range(1, ROWS + 1))
    yield db
    db.close()


def test_extract_through_a_sasl_cluster(
    tmp_path: Path, sasl_broker: SaslBroker, orders: OrdersDb
) -> None:
    config = sasl_pipeline(tmp_path, orders.url, sasl_broker, PASSWORD)
    result = run_extract(config, logs=tmp_path / "logs", timeout=120)
    assert result.returncode == 0, result.describe()
    name = config.read_text().split('"name": "')[1].split('"')[0]
    active = ids(read_committed(sasl_broker.plaintext, topics.active(name, "orders")))
    assert set(active) == {i for i in range(1, ROWS + 1) if is_valid(i)}


def test_a_refused_sasl_login_is_one_line_that_never_shows_the_password(
    tmp_path: Path, sasl_broker: SaslBroker, orders: OrdersDb
) -> None:
    config = sasl_pipeline(tmp_path, orders.url, sasl_broker, "Wr0ng-Sasl-pw")
    result: CliResult = run_extract(config, logs=tmp_path / "logs", timeout=120)
    print(f"refused SASL login: exit {result.returncode} after {result.seconds:.1f}s")
    assert "Wr0ng" not in result.stdout + result.stderr
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    assert result.stderr_lines[0].startswith("error: "), result.describe()
    assert "authentication" in result.stderr.lower(), result.describe()
    assert result.seconds < BOUND, result.describe()
