"""Driver messages become terminal or transient source errors, passwords masked."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dataplump.errors import TerminalError, TransientError
from dataplump.sources.errors import (
    SourceError,
    TransientSourceError,
    classify,
    redact,
    wrap_error,
)

URL = sa.make_url("postgresql+psycopg://app:p%40ss w0rd@db.example:5432/shop")


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('FATAL:  password authentication failed for user "app"', "auth"),
        ("(1045, \"Access denied for user 'app'@'10.0.0.1' (using password: YES)\")", "auth"),
        ('FATAL:  database "shop" does not exist', "no_database"),
        ("(1049, \"Unknown database 'shop'\")", "no_database"),
        ('could not translate host name "db.example" to address', "unknown_host"),
        ("Connection refused\n\tIs the server running on that host", "unreachable"),
        ("(2013, 'Lost connection to MySQL server during query')", "unreachable"),
        ("FATAL:  terminating connection due to administrator command", "unreachable"),
        (  # a parallel query's worker, when the server shuts down mid-read (ADBC's text)
            "[libpq] Execution error [PGRES_FATAL_ERROR]: ERROR: terminating background"
            ' worker "parallel worker" due to administrator command CONTEXT: parallel worker',
            "unreachable",
        ),
        ("cx writer failed: Source(MySQLError(CodecError { IO error: `bytes", "unreachable"),
        ("cx writer failed: Source(MySQLError(IoError { server disconnected }))", "unreachable"),
        ("database is locked", "transient"),
        ('relation "orders" does not exist', "other"),
        (
            'FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "app",'
            ' database "shop", no encryption',
            "tls_required",
        ),
        (
            "(3159, 'Connections using insecure transport are prohibited while"
            " --require_secure_transport=ON.')",
            "tls_required",
        ),
        (
            'connection to server at "db", port 5432 failed: SSL error: certificate verify'
            " failed",
            "tls",
        ),
        ('server certificate for "db.example" does not match host name "db"', "tls"),
        ("server does not support SSL, but SSL was required", "tls"),
        ('root certificate file "/nope/ca.pem" does not exist', "tls"),
        # only an unencrypted *host* line is missing: the login itself is refused
        (
            'FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "app",'
            ' database "shop", SSL encryption',
            "auth",
        ),
    ],
)  # fmt: skip
def test_classify(message: str, kind: str) -> None:
    assert classify(message) == kind


def test_sqlstate_and_mysql_numbers_decide_when_the_text_does_not() -> None:
    assert classify("could not serialize access", sqlstate="40001") == "transient"
    assert classify("deadlock detected", sqlstate="40P01") == "transient"
    assert classify("syntax error", sqlstate="42601") == "other"
    assert classify("Deadlock found when trying to get lock", mysql_code=1213) == "transient"


def test_redact_masks_plain_and_quoted_passwords_and_flattens() -> None:
    text = "url postgresql://app:p%40ss%20w0rd@db and p@ss w0rd\n  and p%40ss+w0rd\n"
    assert redact(text, URL) == "url postgresql://app:***@db and *** and ***"


def test_wrap_auth_error_is_terminal_and_masked() -> None:
    orig = Exception('FATAL:  password authentication failed for user "app"')
    error = wrap_error(sa_exc.OperationalError("connect", {}, orig), action="opening", url=URL)
    assert isinstance(error, SourceError)
    assert isinstance(error, TerminalError)
    assert str(error) == (
        "PostgreSQL at db.example:5432 rejected the login of user `app` (FATAL: password"
        ' authentication failed for user "app"): check the user and password in'
        " `source.url` (postgresql+psycopg://app:***@db.example:5432/shop)"
    )


def test_wrap_mysql_number_from_pymysql_args() -> None:
    orig = Exception(2003, "Can't connect to MySQL server on 'db' (timed out)")
    url = sa.make_url("mysql+pymysql://app:secret@db/shop")
    error = wrap_error(orig, action="opening `t`", url=url, table="t")
    assert isinstance(error, TransientSourceError)
    assert isinstance(error, TransientError)
    assert error.table == "t"
    assert "secret" not in str(error)


def test_wrap_keeps_only_the_message_of_adbc_errors() -> None:
    orig = Exception(
        'NOT_FOUND: ERROR:  relation "x" does not exist\nLINE 1: select\n\nQuery was: select'
        " * from x. SQLSTATE: 42P01"
    )
    error = wrap_error(orig, action="reading `x`", url=URL)
    assert str(error) == 'reading `x` failed: NOT_FOUND: ERROR: relation "x" does not exist'


def test_wrap_passes_source_errors_through() -> None:
    error = SourceError("as is")
    assert wrap_error(error, action="x", url=URL) is error


def test_wrap_tls_errors_are_terminal_and_say_which_setting() -> None:
    url = sa.make_url("postgresql+psycopg://app:s3cret@db:5432/shop?sslmode=verify-full")
    orig = Exception('connection to server at "db", port 5432 failed: SSL error: certificate'
                     " verify failed")  # fmt: skip
    error = wrap_error(sa_exc.OperationalError("connect", {}, orig), action="opening", url=url)
    assert isinstance(error, SourceError)
    assert "the TLS connection to PostgreSQL at db:5432 failed" in str(error)
    assert "sslrootcert" in str(error)
    assert "app:***@db:5432" in str(error)
    assert "s3cret" not in str(error)
    orig = Exception('FATAL:  pg_hba.conf rejects connection for host "10.0.0.1", user "app",'
                     ' database "shop", no encryption')  # fmt: skip
    error = wrap_error(sa_exc.OperationalError("connect", {}, orig), action="opening", url=url)
    assert isinstance(error, SourceError)
    assert "takes only encrypted connections" in str(error)
