"""Receivers for notifier tests, one per test: HTTP and SMTP servers on 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.notify.servers import Mailbox, WebhookServer, self_signed


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed (certificate, key) for 127.0.0.1."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test certificate (and verifies host names)."""
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def mailbox(certificate: tuple[Path, Path]) -> Iterator[Mailbox]:
    """SMTP with STARTTLS required and AUTH LOGIN (user `alerts`, password `s3cret-pw`)."""
    server = Mailbox(certificate)
    yield server
    server.close()


@pytest.fixture
def plain_mailbox() -> Iterator[Mailbox]:
    """SMTP without TLS or login."""
    server = Mailbox()
    yield server
    server.close()
