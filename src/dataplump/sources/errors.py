"""Errors of the source seam, and the wrapping of driver errors where they enter.

::

    TerminalError
    └── SourceError            retrying cannot help: wrong URL or password, no such table or
                               column, a type DataPlump cannot carry, a value that does not fit
    TransientError
    └── TransientSourceError   the same read may succeed later: server down or restarting,
                               connection lost, deadlock, serialization failure

No psycopg, pymysql, sqlite3, SQLAlchemy, ADBC, ConnectorX or pyarrow exception leaves
:mod:`dataplump.sources`: each is turned into one of the two above by :func:`wrap_error`,
with ``raise ... from None`` so a driver's message (which may quote the connection
string) is never chained. Every message is one line, names the table, has the password
masked (:func:`redact`) and ends with what to do next.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote, quote_plus

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from dataplump.config.models import masked_url, url_secrets
from dataplump.errors import TerminalError, TransientError

__all__ = [
    "SourceError",
    "TransientSourceError",
    "classify",
    "redact",
    "wrap_error",
]


class SourceError(TerminalError):
    """Reading a source table cannot succeed as configured; fix the config or the database."""

    def __init__(self, message: str, *, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table
        """The source table the error is about, when there is one."""


class TransientSourceError(TransientError):
    """Reading a source table failed in a way that may pass: retry the read later."""

    def __init__(self, message: str, *, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table
        """The source table the error is about, when there is one."""


_MASK = "***"


def redact(text: str, url: URL | None) -> str:
    """``text`` with the password of ``url`` and the credentials in its query (plain or
    URL-quoted) replaced by ``***``.

    Also flattens the text to one line with single spaces: drivers put hints and SQL on
    further lines and pad their prefixes (libpq's ``FATAL:  ``).
    """
    for secret in url_secrets(url) if url is not None else []:
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, _MASK)
    return " ".join(text.split())


# Patterns in driver messages (libpq, MySQL client, sqlite3), checked in order.
# The server takes only encrypted connections (libpq: pg_hba's `hostnossl ... reject`
# or no `host` line; MySQL: require_secure_transport): checked before _AUTH, which
# matches "pg_hba.conf" too, because the password is not what is wrong.
_TLS_REQUIRED = re.compile(
    r"pg_hba\.conf rejects connection .*, no encryption|insecure transport are prohibited",
    re.IGNORECASE,
)
# The TLS handshake failed or cannot be made as configured: an untrusted or mismatched
# certificate, a missing CA file, a server without TLS when TLS is required. A setting
# to fix, never an outage to wait out.
_TLS = re.compile(
    r"certificate verify failed|does not match host name|server does not support SSL"
    r"|root certificate file .* does not exist|SSL connection (error|is required)"
    r"|could not (read|load) (root certificate|certificate|private key)"
    r"|sslmode value .* invalid|tlsv1 alert|wrong version number",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"password authentication failed|authentication failed|access denied for user"
    r"|no password supplied|pg_hba\.conf|\b28P01\b|\(28000\)|\b1045\b",
    re.IGNORECASE,
)
_NO_DATABASE = re.compile(
    r'database "[^"]*" does not exist|unknown database|\b3D000\b|\b1049\b', re.IGNORECASE
)
_UNREACHABLE = re.compile(
    r"connection refused|could not connect|can't connect|timeout expired|timed out"
    r"|no route to host|network is unreachable|server closed the connection"
    r"|connection reset|lost connection|server has gone away|broken pipe"
    r"|the database system is (starting up|shutting down|in recovery mode)"
    r"|terminating connection|terminating background worker|\bio error\b"
    r"|bytes remaining on stream|server disconnected"
    r"|\b2002\b|\b2003\b|\b2006\b|\b2013\b",
    re.IGNORECASE,
)
_UNKNOWN_HOST = re.compile(
    r"could not translate host name|name or service not known|unknown (mysql server )?host"
    r"|nodename nor servname|temporary failure in name resolution|\b2005\b",
    re.IGNORECASE,
)
# SQLSTATE classes/codes that say "try again": connection exceptions, serialization
# failure, deadlock, insufficient resources, operator intervention (shutdown, cancel).
_TRANSIENT_SQLSTATE = re.compile(r"^(08|40|53|57P)|^57014$|^55P03$")
# MySQL error numbers that say "try again": lock wait timeout, deadlock, too many
# connections, server shutdown, query interrupted, connection errors.
_TRANSIENT_MYSQL = {1040, 1053, 1205, 1213, 1317, 2002, 2003, 2006, 2013}
# SQLite: the database file is locked by another connection.
_TRANSIENT_SQLITE = re.compile(r"database is locked|database table is locked", re.IGNORECASE)

Kind = Literal[
    "tls_required",
    "tls",
    "auth",
    "no_database",
    "unknown_host",
    "unreachable",
    "transient",
    "other",
]
"""What a driver error means for the caller (see :func:`classify`)."""


def classify(message: str, *, sqlstate: str | None = None, mysql_code: int | None = None) -> Kind:
    """What kind of failure a driver message (and its SQLSTATE or MySQL number) describes.

    ``tls_required`` (the server takes only encrypted connections), ``tls`` (the TLS
    handshake failed: certificate, CA file), ``auth``, ``no_database`` and
    ``unknown_host`` are terminal (the URL is wrong), ``unreachable`` and ``transient``
    are worth a retry, ``other`` is terminal.
    """
    if mysql_code == 3159 or _TLS_REQUIRED.search(message):  # ER_SECURE_TRANSPORT_REQUIRED
        return "tls_required"
    if mysql_code == 2026 or _TLS.search(message):  # CR_SSL_CONNECTION_ERROR
        return "tls"
    if _AUTH.search(message):
        return "auth"
    if _NO_DATABASE.search(message):
        return "no_database"
    if _UNKNOWN_HOST.search(message):
        return "unknown_host"
    if mysql_code in (2002, 2003) or _UNREACHABLE.search(message):
        return "unreachable"
    if sqlstate and _TRANSIENT_SQLSTATE.search(sqlstate):
        return "transient"
    if mysql_code in _TRANSIENT_MYSQL or _TRANSIENT_SQLITE.search(message):
        return "transient"
    return "other"


_DATABASE_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}
_TLS_HINT = {
    "postgresql": "`sslmode=verify-full&sslrootcert=<CA file>`, or `sslmode=require`",
    "mysql": "`ssl_ca=<CA file>` for PyMySQL",
    "mariadb": "`ssl_ca=<CA file>` for PyMySQL",
}
"""How each backend's URL asks for TLS, for the hint in TLS errors."""


def _details(exc: BaseException) -> tuple[str, str | None, int | None]:
    """The driver's own message, SQLSTATE and MySQL error number, whatever wrapped it."""
    orig: BaseException = exc
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    mysql_code = None
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # pymysql: (errno, message)
        mysql_code = args[0]
        message = str(args[1]) if len(args) > 1 else str(orig)
    else:
        message = str(orig) or type(orig).__name__
        if found := re.search(r"ERROR (\d{4}) \((\w{5})\)", message):  # ConnectorX MySQL
            mysql_code, sqlstate = int(found.group(1)), found.group(2)
        elif sqlstate is None and (found := re.search(r"SQLSTATE: (\w{5})", message)):
            sqlstate = found.group(1)
    # ADBC and ConnectorX repeat the whole query after the message; the message is enough.
    message = re.split(r"\n\s*Query was:|\nLINE \d+:", message)[0]
    return message, sqlstate if isinstance(sqlstate, str) else None, mysql_code


def wrap_error(
    exc: BaseException, *, action: str, url: URL, table: str | None = None
) -> SourceError | TransientSourceError:
    """A driver/SQLAlchemy error as a DataPlump source error, transient or terminal by kind.

    ``action`` says what was being done ("reading `orders`"); ``url`` is the source
    URL, used to name the server and to mask its password in the message.
    """
    if isinstance(exc, SourceError | TransientSourceError):
        return exc
    message, sqlstate, mysql_code = _details(exc)
    detail = redact(message, url)
    kind = classify(message, sqlstate=sqlstate, mysql_code=mysql_code)
    backend = url.get_backend_name()
    name = _DATABASE_NAMES.get("mysql" if backend == "mariadb" else backend, backend)
    where = f"{url.host or 'localhost'}:{url.port}" if url.port else (url.host or "localhost")
    masked = masked_url(url)
    if backend == "sqlite":
        where = url.database or ":memory:"
    if kind == "tls_required":
        return SourceError(
            f"{name} at {where} takes only encrypted connections ({detail}): ask for TLS in"
            f" `source.url` ({_TLS_HINT.get(backend, 'its TLS options')}; {masked})",
            table=table,
        )
    if kind == "tls":
        return SourceError(
            f"the TLS connection to {name} at {where} failed ({detail}): check the TLS options"
            f" of `source.url` ({_TLS_HINT.get(backend, 'its TLS options')}) and the server's"
            f" certificate ({masked})",
            table=table,
        )
    if kind == "auth":
        return SourceError(
            f"{name} at {where} rejected the login of user `{url.username}` ({detail}): check"
            f" the user and password in `source.url` ({masked})",
            table=table,
        )
    if kind == "no_database":
        return SourceError(
            f"{name} at {where} has no database `{url.database}`: check the database name in"
            f" `source.url` ({masked})",
            table=table,
        )
    if kind == "unknown_host":
        return SourceError(
            f"cannot resolve the host `{url.host}` of `source.url` ({masked}): check the host name",
            table=table,
        )
    if kind == "unreachable":
        return TransientSourceError(
            f"cannot reach {name} at {where} while {action} ({detail}): is the server running"
            f" and `source.url` right ({masked})? Retry later",
            table=table,
        )
    if kind == "transient":
        return TransientSourceError(
            f"{action} failed: {detail}; the database says this may pass, retry later",
            table=table,
        )
    return SourceError(f"{action} failed: {detail}", table=table)
