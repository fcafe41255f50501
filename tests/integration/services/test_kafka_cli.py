"""`dataplump kafka up/status/logs/down` against a real broker, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplump.bus.kafka import Producer, consume_batch, consumer, create_topics
from dataplump.services import kafka as kafka_service
from dataplump.services.kafka import free_port, port_is_free

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataplump", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


@pytest.fixture
def broker_dir(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "kafka"
    yield data_dir
    cli("kafka", "down", "-d", str(data_dir), "--timeout", "5")


def test_up_status_restart_down_keeps_data_and_frees_port(broker_dir: Path) -> None:
    port = free_port()
    up = cli("kafka", "up", "--port", str(port), "-d", str(broker_dir))
    assert up.returncode == 0, up.stderr
    bootstrap = f"127.0.0.1:{port}"
    assert up.stdout.strip().splitlines()[-1] == bootstrap

    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `make setup` installs it"
    listing = subprocess.run(
        [kcat, "-b", bootstrap, "-L"], capture_output=True, text=True, timeout=30, check=True
    )
    assert f"broker 1 at 127.0.0.1:{port}" in listing.stdout

    status = json.loads(cli("kafka", "status", "-d", str(broker_dir), "--json").stdout)
    assert status["running"]
    assert status["reachable"]
    assert status["bootstrap"] == bootstrap
    first_pid = status["pid"]

    again = cli("kafka", "up", "--port", str(port), "-d", str(broker_dir))
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert json.loads(cli("kafka", "status", "-d", str(broker_dir), "--json").stdout)["pid"] == (
        first_pid
    )

    create_topics(bootstrap, ["kept"])
    producer = Producer(bootstrap)
    producer.produce("kept", b"survives a restart", key=b"k")
    producer.flush()

    down = cli("kafka", "down", "-d", str(broker_dir))
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert port_is_free(port)
    stopped = cli("kafka", "status", "-d", str(broker_dir))
    assert stopped.returncode == 1
    assert "not running" in stopped.stdout

    assert cli("kafka", "up", "--port", str(port), "-d", str(broker_dir)).returncode == 0
    reader = consumer(bootstrap, "restart-check")
    reader.subscribe(["kept"])
    got = []
    for _ in range(30):
        got += consume_batch(reader, 10, 1.0)
        if got:
            break
    reader.close()
    assert [m.value() for m in got] == [b"survives a restart"]

    logs = cli("kafka", "logs", "-d", str(broker_dir), "-n", "5")
    assert logs.returncode == 0
    assert len(logs.stdout.splitlines()) == 5


def test_port_taken_is_one_clear_line(broker_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = cli("kafka", "up", "--port", str(port), "-d", str(broker_dir))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use by another program: "
        "pick another with --port, or stop that program"
    )


def test_missing_jars_say_how_to_install(broker_dir: Path, tmp_path: Path) -> None:
    result = cli(
        "kafka", "up", "-d", str(broker_dir), env={"DATAPLUMP_CACHE_DIR": str(tmp_path / "empty")}
    )
    assert result.returncode == 1
    assert "jars are not in" in result.stderr
    assert "dataplump kafka install" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("java_says", "expected"),
    [
        ('openjdk version "11.0.2" 2019-01-15', "is Java 11, Kafka needs Java 17 or newer"),
        ('java version "1.8.0_301"', "is Java 8, Kafka needs Java 17 or newer"),
    ],
)
def test_old_java_is_refused(
    broker_dir: Path, tmp_path: Path, java_says: str, expected: str
) -> None:
    fake_home = tmp_path / "jdk"
    (fake_home / "bin").mkdir(parents=True)
    java = fake_home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{java_says}' >&2\n")
    java.chmod(0o755)
    result = cli(
        "kafka",
        "up",
        "--port",
        str(free_port()),
        "-d",
        str(broker_dir),
        env={"JAVA_HOME": str(fake_home)},
    )
    assert result.returncode == 1
    assert expected in result.stderr


def test_missing_java_is_refused(broker_dir: Path, tmp_path: Path) -> None:
    result = cli("kafka", "up", "-d", str(broker_dir), env={"JAVA_HOME": str(tmp_path / "nojdk")})
    assert result.returncode == 1
    assert "Java not found" in result.stderr


def test_down_and_status_without_broker(tmp_path: Path) -> None:
    assert cli("kafka", "down", "-d", str(tmp_path)).stdout.strip() == "Kafka was not running"
    assert cli("kafka", "status", "-d", str(tmp_path)).returncode == 1
    logs = cli("kafka", "logs", "-d", str(tmp_path))
    assert logs.returncode == 1
    assert "never started" in logs.stderr


def test_pipeline_file_chooses_managed_broker_or_external_cluster(tmp_path: Path) -> None:
    port = free_port()
    managed = tmp_path / "managed.yaml"
    managed.write_text(
        "pipeline: {name: demo}\nsource: {url: 'sqlite:///demo.db'}\n"
        "tables: {orders: {primary_key: id}}\n"
        f"kafka: {{managed: {{port: {port}, data_dir: broker}}}}\n"
    )
    external = tmp_path / "external.yaml"
    external.write_text(
        "pipeline: {name: demo}\nsource: {url: 'sqlite:///demo.db'}\n"
        "tables: {orders: {primary_key: id}}\n"
        f"kafka: {{bootstrap_servers: '127.0.0.1:{port}'}}\n"
    )
    try:
        up = cli("kafka", "up", "-c", str(managed))
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-1] == f"127.0.0.1:{port}"
        assert (tmp_path / "broker" / "broker.json").exists()  # data_dir is relative to the file

        ext_up = cli("kafka", "up", "-c", str(external))
        assert ext_up.returncode == 0
        assert "starts nothing" in ext_up.stdout
        ext_status = json.loads(cli("kafka", "status", "-c", str(external), "--json").stdout)
        assert ext_status == {"external": f"127.0.0.1:{port}", "reachable": True}
        assert "nothing to stop" in cli("kafka", "down", "-c", str(external)).stdout
        assert cli("kafka", "status", "-c", str(managed)).returncode == 0
    finally:
        assert cli("kafka", "down", "-c", str(managed)).returncode == 0
    assert port_is_free(port)


def test_broken_pipeline_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: {name: demo}\nkafka: {managed: {port: nine}}\n")
    result = cli("kafka", "up", "-c", str(bad))
    assert result.returncode == 1
    assert "dataplump config check" in result.stderr


def test_cluster_id_beginning_with_a_dash_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One random cluster id in 64 begins with "-": the tool must not read it as a flag."""
    monkeypatch.setattr(kafka_service, "_kafka_uuid", lambda: "-AbCdEfGhIjKlMnOpQrStU")
    manager = kafka_service.KafkaManager(data_dir=tmp_path / "broker", port=free_port())
    manager._write_configs(free_port())
    manager._format_storage(kafka_service.find_java())
    meta = (manager._log_dirs / "meta.properties").read_text()
    assert "cluster.id=-AbCdEfGhIjKlMnOpQrStU" in meta
