"""The dashboard behind a real uvicorn, spoken to over a raw socket: request targets that
an HTTP client library would normalise (`..` segments, encoded dots and slashes, NUL,
absolute paths and URLs) reach the app as sent, and none of them opens a file, skips
the token or answers without the security headers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from pydantic import SecretStr

from dataplump.present.app import LOOPBACK_HOSTS, create_app
from dataplump.present.data import DashboardData
from dataplump.services.kafka import free_port
from tests.unit.present.frames import config, snapshot

pytestmark = [pytest.mark.integration]

TOKEN = "raw-socket-token-8086"


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    pipeline = config()
    present = pipeline.present.model_copy(update={"auth_token": SecretStr(TOKEN)})
    pipeline = pipeline.model_copy(update={"present": present})
    source = DashboardData(pipeline, None, refresh_seconds=3600, reader=lambda _: snapshot())
    app = create_app(pipeline, source, allowed_hosts=LOOPBACK_HOSTS)
    at = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=at, log_level="warning", server_header=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield at
    server.should_exit = True
    thread.join(10)


def raw(port: int, target: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
    """Send ``GET target`` byte for byte; return (status, headers, body)."""
    host = f"Host: 127.0.0.1:{port}\r\n"
    request = f"GET {target} HTTP/1.1\r\n{host}{headers}Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    found = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return status, found, body


TARGETS = [
    "/assets/../api/overview",
    "/assets/../../../../etc/passwd",
    "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/assets/%2e%2e/%2e%2e/app.py",
    "/assets/%2e%2e%2fapp.py",
    "/assets/.%2e/.%2e/app.py",
    "/assets/app.js%00",
    "/assets/app.js%00../../app.py",
    "/assets//etc/passwd",
    "/assets/%2fetc%2fpasswd",
    "/assets/..\\..\\app.py",
    "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd",
    "/api/health/../overview",
    "/api/health/%2e%2e/overview",
    "/login/../api/overview",
    "/api/profile/..%2f..%2f..%2fetc%2fpasswd",
    "/api/charts/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/profile/orders%00",
    "http://127.0.0.1/api/overview",
    "/api/overview#",
]


@pytest.mark.parametrize("target", TARGETS)
def test_odd_request_targets_open_nothing(port: int, target: str) -> None:
    status, headers, body = raw(port, target)
    assert status in (400, 401, 303, 404, 307), (target, status, body[:200])
    assert b"root:" not in body
    assert b"import " not in body
    assert b'"tables"' not in body  # the overview's data
    assert headers.get("x-content-type-options") == "nosniff", (target, headers)
    assert headers.get("x-frame-options") == "DENY", (target, headers)
    assert headers.get("referrer-policy") == "no-referrer", (target, headers)
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), target


def test_the_same_targets_with_the_token_still_open_no_file(port: int) -> None:
    bearer = f"Authorization: Bearer {TOKEN}\r\n"
    for target in TARGETS:
        status, _, body = raw(port, target, bearer)
        assert b"root:" not in body, target
        assert b"import " not in body, target
        if target in ("/assets/../api/overview", "/api/health/../overview"):
            assert status == 404, (target, status)  # no route: `..` is not resolved


def test_the_token_guards_over_a_real_socket(port: int) -> None:
    assert raw(port, "/api/overview")[0] == 401
    status, headers, _ = raw(port, "/alerts")
    assert (status, headers["location"]) == (303, "/login?next=/alerts")
    status, _, body = raw(port, "/api/overview", f"X-DataPlump-Token: {TOKEN}\r\n")
    assert status == 200
    assert b'"tables"' in body
    assert raw(port, "/api/health")[0] == 200
    assert "server" not in raw(port, "/api/health")[1]  # no version banner


def test_another_host_header_is_refused_with_the_headers(port: int) -> None:
    request = "GET /api/health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        data = conn.recv(65536)
    head = data.decode("latin-1").lower()
    assert head.startswith("http/1.1 400")
    assert "x-content-type-options: nosniff" in head
