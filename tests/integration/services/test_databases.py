"""The local PostgreSQL and MariaDB servers, exercised for real (no mocks)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from dataplump.errors import DatabaseServiceError
from dataplump.testing.databases import (
    HOST,
    DatabaseServer,
    MariaDBServer,
    PostgresServer,
    drop_database,
)
from tests.fixtures.databases import _start

pytestmark = pytest.mark.integration

KINDS = [
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb"),
]
SERVER_CLASSES: dict[str, type[DatabaseServer]] = {
    "postgres": PostgresServer,
    "mariadb": MariaDBServer,
}
FRESH_NAME = re.compile(r"^dp_test_[0-9a-f]{16}$")


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> DatabaseServer:
    """The session's PostgreSQL or MariaDB server."""
    running: DatabaseServer = request.getfixturevalue(f"{request.param}_server")
    return running


@pytest.fixture(params=KINDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on PostgreSQL or MariaDB (the ``*_url`` fixtures)."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@contextlib.contextmanager
def _engine(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _table_names(url: str) -> list[str]:
    with _engine(url) as engine:
        return sa.inspect(engine).get_table_names()


# --- fresh databases -------------------------------------------------------------


def test_fresh_databases_are_distinct_and_empty(server: DatabaseServer) -> None:
    first, second = server.create_database(), server.create_database()
    try:
        names = [sa.make_url(u).database or "" for u in (first, second)]
        assert names[0] != names[1]
        assert all(FRESH_NAME.match(n) for n in names), names
        prefix = f"{server.drivername}://{server.user}:"
        assert first.startswith(prefix)
        assert f"@{HOST}:{server.port}/{names[0]}" in first
        assert set(names) <= set(server.list_databases())
        assert _table_names(first) == []
        assert _table_names(second) == []
    finally:
        server.drop_database(first)
        drop_database(second)  # the module-level function, from the URL alone
    assert not set(names) & set(server.list_databases())


def test_table_round_trip(database_url: str) -> None:
    metadata = sa.MetaData()
    orders = sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer", sa.String(100), nullable=False),
        sa.Column("amount", sa.Numeric(10, 2), nullable=False),
        sa.Column("paid", sa.Boolean, nullable=False),
    )
    rows = [
        {"id": 1, "customer": "Ada", "amount": Decimal("12.50"), "paid": True},
        {"id": 2, "customer": "Zoë ✓ 北京", "amount": Decimal("0.01"), "paid": False},
        {"id": 3, "customer": "O'Brien", "amount": Decimal("99999999.99"), "paid": True},
    ]
    with _engine(database_url) as engine:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(orders.insert(), rows)
        with engine.connect() as conn:
            got = [dict(r._mapping) for r in conn.execute(orders.select().order_by(orders.c.id))]
    assert got == rows
    assert _table_names(database_url) == ["orders"]


def test_drop_ends_sessions_still_using_the_database(server: DatabaseServer) -> None:
    url = server.create_database()
    engine = sa.create_engine(url)
    try:
        conn = engine.connect()
        conn.execute(sa.text("CREATE TABLE held (x INTEGER)"))
        conn.execute(sa.text("INSERT INTO held VALUES (1)"))  # transaction left open
        server.drop_database(url)
        assert sa.make_url(url).database not in server.list_databases()
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text("SELECT x FROM held")).all()
    finally:
        engine.dispose()


def test_fixture_databases_are_dropped_after_the_test(postgres_server: PostgresServer) -> None:
    # Every fresh database of the tests before this one is gone again.
    leftovers = set(postgres_server.list_databases())
    with postgres_server.fresh_database() as url:
        name = sa.make_url(url).database
        assert name in postgres_server.list_databases()
    assert set(postgres_server.list_databases()) == leftovers


def test_sqlite_url_is_a_file_in_tmp_path(sqlite_url: str, tmp_path: Path) -> None:
    with _engine(sqlite_url) as engine, engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    assert (tmp_path / "test.sqlite").is_file()


# --- lifecycle -------------------------------------------------------------------


def test_ensure_running_twice_is_harmless(server: DatabaseServer) -> None:
    pid = server.status().pid
    assert server.ensure_running() is False
    assert server.ensure_running() is False
    status = server.status()
    assert status.running
    assert status.pid == pid
    assert str(status).startswith(f"{server.kind}: running on {HOST}:{server.port}")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp*)."""
    found: set[str] = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
            found.add(socket.inet_ntop(family, b"".join(words)))
    return found


def _non_loopback_ipv4() -> str | None:
    """This machine's outbound IPv4 address, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks a route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_servers_listen_on_loopback_only(server: DatabaseServer) -> None:
    assert _listening_addresses(server.port) == {HOST}
    other = _non_loopback_ipv4()
    if other is not None:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other, server.port), timeout=2).close()


def test_wrong_password_is_rejected(server: DatabaseServer) -> None:
    url = sa.make_url(server.url()).set(password="not-the-password")
    with (
        _engine(url.render_as_string(hide_password=False)) as engine,
        pytest.raises(sa.exc.OperationalError) as caught,
    ):
        engine.connect().close()
    assert re.search(r"password authentication failed|Access denied", str(caught.value))
    impostor = type(server)(
        port=server.port, services_dir=server.services_dir, password="not-the-password"
    )
    with pytest.raises(DatabaseServiceError, match="rejects the password of dataplump"):
        impostor.ensure_running()


def test_postgres_allows_only_scram_password_logins_over_tcp(
    postgres_server: PostgresServer,
) -> None:
    with _engine(postgres_server.url()) as engine, engine.connect() as conn:
        rules = conn.execute(sa.text("SELECT type, address, auth_method FROM pg_hba_file_rules"))
        stored = conn.execute(
            sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = current_user")
        ).scalar_one()
        sockets = conn.execute(sa.text("SHOW unix_socket_directories")).scalar_one()
    assert {tuple(r) for r in rules} == {("host", HOST, "scram-sha-256")}
    assert stored.startswith("SCRAM-SHA-256$")
    assert sockets == ""  # no Unix socket at all


def test_mariadb_accounts_are_ours_or_socket_only(mariadb_server: MariaDBServer) -> None:
    with _engine(mariadb_server.url()) as engine, engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT user, host FROM mysql.user"))
        accounts = {(str(user), str(host)) for user, host in rows}
        bind = conn.execute(sa.text("SELECT @@bind_address")).scalar_one()
    # Besides ours, only install-db's root/mysql/mariadb.sys, reachable through the
    # Unix socket in the server's private dir, never over TCP; no anonymous user.
    assert ("dataplump", HOST) in accounts
    assert {host for user, host in accounts if user != "dataplump"} <= {"localhost"}
    assert all(user for user, _ in accounts)
    assert bind == HOST


# --- clear errors ----------------------------------------------------------------


@pytest.fixture
def junk_port() -> Iterator[int]:
    """A port where something that is no database answers (an HTTP-ish reply)."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize("kind", KINDS)
def test_port_taken_by_something_else(kind: str, junk_port: int, tmp_path: Path) -> None:
    server = SERVER_CLASSES[kind](port=junk_port, services_dir=tmp_path)
    with pytest.raises(DatabaseServiceError, match=f"port {junk_port} on {HOST} is taken by"):
        server.ensure_running()
    assert not (tmp_path / kind).exists()  # nothing was initialized


def test_missing_postgres_binaries_say_run_make_setup(tmp_path: Path) -> None:
    server = PostgresServer(install_root=tmp_path, services_dir=tmp_path)
    expected = (
        f"PostgreSQL server binaries not found under {tmp_path}: "
        "run `make setup` (installs Debian's postgresql)"
    )
    with pytest.raises(DatabaseServiceError) as caught:
        server.ensure_running()
    assert str(caught.value) == expected
    # The session fixture turns it into a failure, never a skip.
    with pytest.raises(pytest.fail.Exception, match="run `make setup`"):
        _start(server)


def test_missing_mariadb_binaries_say_run_make_setup(tmp_path: Path) -> None:
    server = MariaDBServer(search_path=str(tmp_path), services_dir=tmp_path)
    with pytest.raises(DatabaseServiceError, match=r"not found: run `make setup` \(installs"):
        server.ensure_running()


# --- from nothing, through a separate process --------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def services_dir() -> Iterator[Path]:
    """A services dir of its own, reachable by the postgres/mysql users (not tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="dataplump-test-", dir="/var/tmp"))
    path.chmod(0o755)  # mkdtemp makes it 0700, which the server users could not traverse
    try:
        yield path
    finally:
        for cls in SERVER_CLASSES.values():
            with contextlib.suppress(DatabaseServiceError):
                cls(services_dir=path, port=_free_port()).stop()
        shutil.rmtree(path, ignore_errors=True)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataplump.testing.databases", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_start_from_nothing_outlives_the_cli_and_keeps_data(kind: str, services_dir: Path) -> None:
    cls = SERVER_CLASSES[kind]
    port = _free_port()
    env = {"DATAPLUMP_TEST_SERVICES_DIR": str(services_dir), cls.port_env: str(port)}
    server = cls(port=port, services_dir=services_dir)
    assert not server.status().initialized

    up = _cli("up", kind, env=env)
    assert up.returncode == 0, up.stderr
    assert "initialized and started" in up.stdout
    # The CLI process has exited; the server it started keeps running on its own.
    status = server.status()
    assert status.running, str(status)
    assert status.pid is not None
    assert _listening_addresses(port) == {HOST}

    url = server.create_database()
    with _engine(url) as engine, engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE kept (x INTEGER)"))

    assert server.stop() is True
    assert server.stop() is False
    stopped = server.status()
    assert not stopped.running
    assert stopped.pid is None
    assert stopped.initialized
    assert _cli("status", kind, env=env).returncode == 3

    assert server.ensure_running() is True  # warm start: same data dir, no new init
    assert _table_names(url) == ["kept"]

    down = _cli("down", "--purge", kind, env=env)
    assert down.returncode == 0, down.stderr
    gone = server.status()
    assert not gone.running
    assert not gone.initialized
