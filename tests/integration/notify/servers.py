"""Real receivers on 127.0.0.1 for notifier tests: an HTTP server and an SMTP server.

``WebhookServer`` records every POST and answers what ``respond`` says (200 by
default; :meth:`WebhookServer.fail` makes it answer 500). ``Mailbox`` is an aiosmtpd
server; with a certificate it requires STARTTLS and AUTH LOGIN; ``refusing`` makes it
refuse every mail with ``421`` (service not available) until cleared. ``self_signed``
makes a certificate for 127.0.0.1 with the ``openssl`` command line (``cryptography``
is not in the project's environment).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from dataplump.services.kafka import free_port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Request], tuple[int, bytes, dict[str, str]]]
"""Answers a request with (status, body, headers)."""


class WebhookServer:
    """A threaded HTTP server on 127.0.0.1 recording POSTs; ``respond`` picks each answer."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.respond: Responder = lambda _request: (200, b"ok", {})
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = Request(self.path, dict(self.headers.items()), body, 0)
                status, answer, headers = server.respond(request)
                request.status = status
                with server._lock:
                    server.requests.append(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, status: int = 500) -> None:
        """Answer every request with ``status`` (an outage) until :meth:`recover`."""
        self.respond = lambda _request: (status, b"down", {})

    def recover(self) -> None:
        """Answer 200 again."""
        self.respond = lambda _request: (200, b"ok", {})

    def failed(self, path: str | None = None) -> list[Request]:
        """Requests answered with a status of 500 or more."""
        with self._lock:
            return [r for r in self.requests if r.status >= 500 and path in (None, r.path)]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300 and path in (None, r.path)]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 60.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(got := self.accepted(path)) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} accepted POSTs, got {self.accepted(path)}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message
    tls: bool
    login: str | None
    at: float = field(default_factory=time.monotonic)


class Mailbox:
    """An SMTP server (aiosmtpd) on 127.0.0.1 keeping every message it receives.

    With ``certificate`` it requires STARTTLS before MAIL, offers AUTH LOGIN only
    (after STARTTLS) and accepts ``user``/``password``.
    """

    def __init__(
        self,
        certificate: tuple[Path, Path] | None = None,
        *,
        user: str = "alerts",
        password: str = "s3cret-pw",  # noqa: S107 (a test server's)
    ) -> None:
        self.mails: list[Mail] = []
        self.refusing = False
        """Refuse every mail with 421 (a server that is down for maintenance)."""
        self.refused = 0
        """Mails refused while :attr:`refusing`."""
        self.logins: list[tuple[str, str, bool]] = []
        self.port = free_port()
        self._user, self._password = user.encode(), password.encode()
        kwargs: dict[str, Any] = {}
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(certificate[0]), str(certificate[1]))
            kwargs = {
                "tls_context": context,
                "require_starttls": True,
                "auth_require_tls": True,
                "auth_exclude_mechanism": ["PLAIN"],
                "authenticator": self._authenticate,
            }
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()

    def _authenticate(
        self, _server: SMTP, session: Session, _envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self._user,
            self._password,
        )
        login = data.login.decode() if isinstance(data, LoginPassword) else "?"
        self.logins.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=data)

    async def handle_MAIL(
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.refusing:
            self.refused += 1
            return "421 4.3.2 Service not available, closing transmission channel"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        data = session.auth_data
        login = data.login.decode() if isinstance(data, LoginPassword) else None
        self.mails.append(
            Mail(
                sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                message=message_from_bytes(content),
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.mails) >= count:
                return list(self.mails)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} mails, got {len(self.mails)}")

    def close(self) -> None:
        self._controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 and localhost, valid for two days."""
    openssl = shutil.which("openssl")
    assert openssl, "the `openssl` command is needed to make a test certificate"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
