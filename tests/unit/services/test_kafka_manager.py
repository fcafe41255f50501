"""Pure parts of the Kafka manager: versions, ports, state; no broker is started."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from dataplump.errors import KafkaServiceError
from dataplump.services import kafka
from dataplump.services.kafka import KafkaManager


def fake_java(tmp_path: Path, says: str) -> str:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{says}' >&2\n")
    java.chmod(0o755)
    return str(java)


@pytest.mark.parametrize(
    ("says", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('java version "1.8.0_301"', 8),
    ],
)
def test_java_major_version(tmp_path: Path, says: str, major: int) -> None:
    assert kafka.java_major_version(fake_java(tmp_path, says)) == major


def test_unreadable_java_version_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaServiceError, match="cannot tell the Java version"):
        kafka.java_major_version(fake_java(tmp_path, "hello"))


def test_pinned_version_is_kafka_4() -> None:
    assert kafka.kafka_version().startswith("4.")


def test_cluster_id_is_16_bytes_base64url() -> None:
    cluster_id = kafka._kafka_uuid()
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert "=" not in cluster_id


@pytest.mark.parametrize(("heap", "mb"), [("1g", 1024), ("512m", 512), ("2048k", 2)])
def test_heap_sizes(heap: str, mb: int) -> None:
    assert kafka._megabytes(heap) == mb


def test_port_is_free_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not kafka.port_is_free(sock.getsockname()[1])
    assert kafka.port_is_free(kafka.free_port())


def test_status_of_an_empty_dir_is_not_running(tmp_path: Path) -> None:
    state = KafkaManager(tmp_path, jar_cache=tmp_path / "cache").status()
    assert not state.running
    assert not state.reachable
    assert state.bootstrap is None


def test_a_recycled_pid_is_not_our_broker(tmp_path: Path) -> None:
    manager = KafkaManager(tmp_path, jar_cache=tmp_path / "cache")
    # pid 1 is alive but its command line does not name this data dir's config
    (tmp_path / "broker.json").write_text('{"pid": 1, "port": 9092}')
    assert not manager.status().running
    assert manager.down() is False


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATAPLUMP_CACHE_DIR", str(tmp_path))
    assert kafka.cache_dir() == tmp_path
    assert KafkaManager(tmp_path / "d").libs_dir.is_relative_to(tmp_path / "kafka")


def test_install_without_maven_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    manager = KafkaManager(tmp_path / "d", jar_cache=tmp_path / "cache")
    with pytest.raises(KafkaServiceError, match=r"Maven \(mvn\) not found"):
        manager.install()


@pytest.mark.parametrize(
    ("users", "mechanisms", "said"),
    [
        ({"dp": 'pw"x'}, ("SCRAM-SHA-512",), 'without `"`'),
        ({"dp": "pw\nx"}, ("SCRAM-SHA-512",), "one line"),
        ({"": "pw"}, ("SCRAM-SHA-512",), "non-empty"),
        ({"dp": "pw"}, ("SCRAM-SHA-1",), "unknown SCRAM mechanism SCRAM-SHA-1"),
    ],
)
def test_scram_users_kafka_storage_cannot_take_are_refused(
    tmp_path: Path, users: dict[str, str], mechanisms: tuple[str, ...], said: str
) -> None:
    """kafka-storage's `--add-scram` quotes with `"` and has no escape: refused up front."""
    with pytest.raises(KafkaServiceError, match=said):
        KafkaManager(tmp_path, scram_users=users, scram_mechanisms=mechanisms)
