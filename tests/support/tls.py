"""A test certificate authority and server certificates it signs, made with `openssl`.

Servers in the security tests (Kafka's SASL_SSL listener, PostgreSQL with ``ssl = on``)
present a certificate signed by a CA the test makes, so clients can verify the chain and
the host name the way they would in production (``ssl.ca.location``,
``sslmode=verify-full``); a second, unrelated CA is the "wrong CA" a client must refuse.
:func:`server_certificate` makes all three; a server fixture extends :class:`CaPair`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and its unencrypted PKCS#8 private key."""

    cert: Path
    key: Path

    def bundle(self, path: Path) -> Path:
        """Key then certificate in one PEM file (Kafka's PEM keystore file)."""
        path.write_text(self.key.read_text() + self.cert.read_text())
        return path


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the `openssl` command is needed to make test certificates"
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str = "ca") -> Certificate:
    """A self-signed CA certificate valid for two days, in ``folder/<name>.pem``."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=DataPlump test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return Certificate(cert, key)


def issue(ca: Certificate, folder: Path, name: str = "server") -> Certificate:
    """A server certificate for 127.0.0.1 and localhost signed by ``ca``."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key, csr = folder / f"{name}.pem", folder / f"{name}-key.pem", folder / f"{name}.csr"
    ext = folder / f"{name}.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
    )  # fmt: skip
    return Certificate(cert, key)


@dataclass(frozen=True)
class CaPair:
    """The two CAs of a test server: the right one and the wrong one."""

    ca: Certificate
    """The CA that signed the server's certificate."""
    other_ca: Certificate
    """A CA that signed nothing the server shows: the wrong one."""


def server_certificate(folder: Path, name: str) -> tuple[CaPair, Certificate]:
    """A test CA and an unrelated one (``folder/ca.pem``, ``folder/other-ca.pem``), and a
    server certificate signed by the first (``folder/<name>.pem``, see :func:`issue`)."""
    ca, other = make_ca(folder, "ca"), make_ca(folder, "other-ca")
    return CaPair(ca, other), issue(ca, folder, name)


def invalid(i: int) -> bool:
    """Rows the security tests' contract (`min: 0`) sends to the dead-letter store."""
    return i % 9 == 0
