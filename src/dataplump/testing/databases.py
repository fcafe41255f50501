"""Local PostgreSQL and MariaDB servers for tests, benchmarks and demos.

The servers come from Debian's packages (``make setup`` installs ``postgresql``
and ``mariadb-server``) and are run by the project itself: no systemd, no init
scripts, no Debian default cluster. Each one

- listens on 127.0.0.1 only, on a fixed non-default port
  (``DATAPLUMP_TEST_PG_PORT``, default 55432; ``DATAPLUMP_TEST_MARIADB_PORT``,
  default 53306), with no Unix socket open to other users;
- keeps its data under ``DATAPLUMP_TEST_SERVICES_DIR`` (default
  ``/var/tmp/dataplump``): ``postgres/data`` and ``mariadb/data``, with the
  server log beside the data dir (``server.log``);
- runs as the ``postgres`` / ``mysql`` OS user when started by root, as the
  calling user otherwise, detached from the caller like a daemon;
- has a superuser ``dataplump`` whose password (``DATAPLUMP_TEST_DB_PASSWORD``,
  default ``dataplump``) is checked over TCP (scram-sha-256 on PostgreSQL);
- trades durability for speed (``fsync=off`` and friends): it is a test server.

Typical use::

    from dataplump.testing.databases import PostgresServer

    server = PostgresServer.from_env()
    server.ensure_running()            # init on first use, start if stopped, else reuse
    with server.fresh_database() as url:
        ...                            # url = postgresql+psycopg://dataplump:...@127.0.0.1:55432/dp_test_...

From a shell (scripts, benchmarks)::

    python -m dataplump.testing.databases up [postgres|mariadb]
    python -m dataplump.testing.databases status
    python -m dataplump.testing.databases create-db postgres   # prints a fresh database's URL
    python -m dataplump.testing.databases drop-db URL
    python -m dataplump.testing.databases down [--purge]

Every failure is a :class:`~dataplump.errors.DatabaseServiceError` whose first
line says what went wrong and what to do; SQLAlchemy and driver errors are
wrapped here and never escape.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Self

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from dataplump.errors import DatabaseServiceError

__all__ = [
    "DEFAULT_MARIADB_PORT",
    "DEFAULT_PASSWORD",
    "DEFAULT_PG_PORT",
    "DEFAULT_SERVICES_DIR",
    "DEFAULT_USER",
    "ENV_MARIADB_PORT",
    "ENV_PASSWORD",
    "ENV_PG_PORT",
    "ENV_SERVICES_DIR",
    "HOST",
    "SERVER_KINDS",
    "DatabaseServer",
    "MariaDBServer",
    "PostgresServer",
    "ServerKind",
    "ServerStatus",
    "create_database",
    "drop_database",
    "main",
    "server_from_env",
]

ServerKind = Literal["postgres", "mariadb"]
"""Which local database server: ``postgres`` (PostgreSQL) or ``mariadb`` (MariaDB)."""

SERVER_KINDS: tuple[ServerKind, ...] = ("postgres", "mariadb")

HOST = "127.0.0.1"
"""The only address the servers listen on."""

DEFAULT_PG_PORT = 55432
DEFAULT_MARIADB_PORT = 53306
DEFAULT_SERVICES_DIR = Path("/var/tmp/dataplump")  # noqa: S108 - reachable by postgres/mysql
DEFAULT_USER = "dataplump"
DEFAULT_PASSWORD = "dataplump"  # noqa: S105 - a local test server's documented default

ENV_PG_PORT = "DATAPLUMP_TEST_PG_PORT"
ENV_MARIADB_PORT = "DATAPLUMP_TEST_MARIADB_PORT"
ENV_SERVICES_DIR = "DATAPLUMP_TEST_SERVICES_DIR"
ENV_PASSWORD = "DATAPLUMP_TEST_DB_PASSWORD"  # noqa: S105 - the variable's name, not a secret

TEST_DATABASE_PREFIX = "dp_test_"
"""Fresh databases are named ``dp_test_<16 hex digits>``."""

_CLI = "python -m dataplump.testing.databases"
_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,63}$")
_LOG_TAIL_LINES = 20
_POLL_SECONDS = 0.05
_CONNECT_TIMEOUT_SECONDS = 3

ProbeState = Literal["ready", "absent", "starting", "rejected"]


@dataclass(frozen=True)
class _Probe:
    state: ProbeState
    detail: str = ""


@dataclass(frozen=True)
class ServerStatus:
    """What :meth:`DatabaseServer.status` found; ``str()`` gives one line for people."""

    kind: ServerKind
    running: bool
    """The server answers on ``host:port`` and accepts our user and password."""
    host: str
    port: int
    data_dir: Path
    log_file: Path
    initialized: bool
    """The data dir exists (a start reuses it instead of running init again)."""
    pid: int | None
    """The server process started from ``data_dir``, when there is one."""
    detail: str = ""
    """Why the port answers but the server is not usable, when that is the case."""

    def __str__(self) -> str:
        where = f"{self.host}:{self.port}"
        if self.running:
            pid = f" (pid {self.pid})" if self.pid is not None else " (not from this data dir)"
            state = f"running on {where}{pid}"
        elif self.detail:
            state = f"not usable on {where}: {self.detail}"
        elif self.pid is not None:
            state = f"process {self.pid} runs from this data dir but does not answer on {where}"
        elif self.initialized:
            state = f"stopped (port {self.port})"
        else:
            state = f"not initialized (port {self.port}; created on first start)"
        return f"{self.kind}: {state}, data dir {self.data_dir}"


class DatabaseServer(ABC):
    """One local database server: its port, data dir, OS user and credentials.

    Subclasses: :class:`PostgresServer` and :class:`MariaDBServer`. Every method
    is safe to call from several processes at once: start and stop hold a file
    lock next to the data dir.
    """

    kind: ClassVar[ServerKind]
    display_name: ClassVar[str]
    os_user: ClassVar[str]
    """The OS user the server runs as when started by root."""
    port_env: ClassVar[str]
    default_port: ClassVar[int]
    drivername: ClassVar[str]
    admin_database: ClassVar[str | None]
    """The database admin connections use (``None``: no default database)."""
    package: ClassVar[str]
    """The Debian package that provides the server."""
    driver_extra: ClassVar[str]
    """The dataplump extra that installs the Python driver."""

    def __init__(
        self,
        *,
        port: int | None = None,
        services_dir: Path | str | None = None,
        user: str = DEFAULT_USER,
        password: str | SecretStr = DEFAULT_PASSWORD,
        start_timeout: float = 60.0,
    ) -> None:
        """Describe a server; nothing is started or touched until a method says so.

        Args:
            port: TCP port on 127.0.0.1 (default: the class's fixed test port).
            services_dir: parent of the per-server dirs (default ``/var/tmp/dataplump``).
                Every directory above it must be traversable by the server's OS user.
            user: the superuser created at init and used in URLs.
            password: that user's password, set at init (changing it later
                needs ``down --purge``).
            start_timeout: seconds to wait for init, start or stop before failing.
        """
        self.port = port if port is not None else self.default_port
        self.services_dir = (
            Path(services_dir).absolute() if services_dir is not None else DEFAULT_SERVICES_DIR
        )
        self.user = _check_name(user, "user")
        self.password = password if isinstance(password, SecretStr) else SecretStr(password)
        secret = self.password.get_secret_value()
        if not secret or any(ch in secret for ch in "\n\r\0"):
            raise DatabaseServiceError(
                "the test database password must be non-empty and one line: "
                f"fix {ENV_PASSWORD} or the password argument"
            )
        self.start_timeout = start_timeout

    @classmethod
    def from_env(cls) -> Self:
        """The server as the environment configures it (ports, services dir, password)."""
        services_dir = os.environ.get(ENV_SERVICES_DIR) or None
        return cls(
            port=_port_from_env(cls.port_env, cls.default_port),
            services_dir=services_dir,
            password=os.environ.get(ENV_PASSWORD) or DEFAULT_PASSWORD,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port}, services_dir={str(self.services_dir)!r})"

    # --- paths -------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The server's own dir (owned by its OS user): data dir, log, pid file."""
        return self.services_dir / self.kind

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def host(self) -> str:
        return HOST

    # --- URLs --------------------------------------------------------------

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL (password included) for ``database`` (default: the admin database)."""
        return self._url(
            database if database is not None else self.admin_database
        ).render_as_string(hide_password=False)

    def _url(self, database: str | None) -> sa.URL:
        return sa.URL.create(
            self.drivername,
            username=self.user,
            password=self.password.get_secret_value(),
            host=HOST,
            port=self.port,
            database=database,
        )

    # --- lifecycle ---------------------------------------------------------

    def ensure_running(self) -> bool:
        """Start the server unless it already answers; return True if this call started it.

        Initializes the data dir on first use, reuses it afterwards, and reuses a
        server that already answers on the port with our user and password.
        Waits (up to ``start_timeout``) until a connection succeeds.

        Raises:
            DatabaseServiceError: binaries missing, the port taken by something
                that rejects our credentials, init failed, or start timed out.
        """
        self._find_binaries()
        self._service_uid_gid()
        with self._lock():
            probe = self._probe()
            if probe.state == "ready":
                return False
            if probe.state == "rejected":
                raise self._rejected_error(probe.detail)
            pid = self._server_pid()
            if pid is not None:
                other = self._pid_port(pid)
                if other is not None and other != self.port:
                    raise DatabaseServiceError(
                        f"{self.display_name} from {self.data_dir} already runs as pid {pid} "
                        f"on port {other}, not {self.port}: run `{_CLI} down {self.kind}` "
                        f"or set {self.port_env}={other}"
                    )
                # Our server process exists: it is starting (or stopping); wait for it.
                self._wait_ready(time.monotonic() + self.start_timeout, log_offset=None)
                return False
            self._prepare_home()
            if not self.data_dir.exists():
                self._initialize()
            offset = _file_size(self.log_file)
            deadline = time.monotonic() + self.start_timeout
            self._start(deadline)
            self._wait_ready(deadline, log_offset=offset)
            return True

    def stop(self) -> bool:
        """Stop the server started from this data dir; return False if none was running.

        A server on the port that was not started from this data dir is left alone.
        """
        if not self.home.exists():
            return False
        with self._lock():
            pid = self._server_pid()
            if pid is None:
                return False
            self._stop(pid, time.monotonic() + self.start_timeout)
            return True

    def purge(self) -> bool:
        """Stop the server and delete its dir (data, log): the next start is from nothing.

        Returns whether a running server was stopped.
        """
        stopped = self.stop()
        if not self.home.exists():
            return stopped
        with self._lock():
            if self.home.exists():
                try:
                    shutil.rmtree(self.home)
                except OSError as exc:
                    raise DatabaseServiceError(f"cannot delete {self.home}: {exc}") from exc
        return stopped

    def status(self) -> ServerStatus:
        """Whether the server answers, on which port, from which data dir."""
        probe = self._probe()
        return ServerStatus(
            kind=self.kind,
            running=probe.state == "ready",
            host=HOST,
            port=self.port,
            data_dir=self.data_dir,
            log_file=self.log_file,
            initialized=self.data_dir.exists(),
            pid=self._server_pid(),
            detail=probe.detail if probe.state == "rejected" else "",
        )

    # --- databases ---------------------------------------------------------

    def create_database(self) -> str:
        """Create an empty, uniquely named database ``dp_test_<hex>`` and return its URL.

        The server must be running (see :meth:`ensure_running`).
        """
        name = TEST_DATABASE_PREFIX + secrets.token_hex(8)
        with self._admin("create database " + name) as conn:
            self._create_database(conn, name)
        return self.url(name)

    def drop_database(self, database: str) -> None:
        """Drop a database (by name or URL), closing any connection still using it."""
        name = _database_name(database)
        with self._admin("drop database " + name) as conn:
            self._drop_database(conn, name)

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        """Yield the URL of a new empty database; drop it afterwards."""
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)

    def list_databases(self, prefix: str = TEST_DATABASE_PREFIX) -> list[str]:
        """Names of the databases whose name starts with ``prefix`` (sorted)."""
        with self._admin("list databases") as conn:
            names = [str(n) for n in conn.execute(sa.text(self._list_databases_sql())).scalars()]
        return sorted(n for n in names if n.startswith(prefix))

    # --- connections -------------------------------------------------------

    @contextlib.contextmanager
    def _admin(self, what: str) -> Iterator[sa.Connection]:
        """An autocommit connection to the admin database; errors become ours."""
        engine = self._engine(self.admin_database)
        try:
            with engine.connect() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise DatabaseServiceError(
                f"{self.display_name} on {HOST}:{self.port}: {what} failed: {_one_line(exc)}"
            ) from exc
        finally:
            engine.dispose()

    def _engine(self, database: str | None) -> sa.Engine:
        try:
            return sa.create_engine(
                self._url(database),
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                connect_args=self._connect_args(),
            )
        except ImportError as exc:
            raise DatabaseServiceError(
                f"the {self.display_name} driver is not installed ({exc.name}): "
                f"install dataplump's `{self.driver_extra}` extra (`uv sync --all-extras`)"
            ) from exc

    def _probe(self) -> _Probe:
        """Does something answer on the port, and does it accept our credentials?"""
        engine = self._engine(self.admin_database)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # whatever the driver raises is a probe result
            state = self._classify(exc) if isinstance(exc, sa_exc.DBAPIError) else "rejected"
            # A bare TCP connect settles "nothing there" however the driver words it
            # (done only on failure: MariaDB logs a warning for each such connect).
            if state != "absent" and not _port_accepts(HOST, self.port):
                state = "absent"
            orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
            return _Probe(state, _one_line(orig or exc))
        finally:
            engine.dispose()
        return _Probe("ready")

    def _rejected_error(self, detail: str) -> DatabaseServiceError:
        pid = self._server_pid()
        if pid is not None:
            where = f"{self.display_name} from {self.data_dir} (pid {pid}) on {HOST}:{self.port}"
            if "password" in detail.lower() or "access denied" in detail.lower():
                return DatabaseServiceError(
                    f"{where} rejects the password of {self.user}: it was initialized with "
                    f"another {ENV_PASSWORD}; set that one, or run "
                    f"`{_CLI} down --purge {self.kind}` to start over ({detail})"
                )
            return DatabaseServiceError(
                f"{where} refuses our connection: {detail}; see {self.log_file}"
            )
        return DatabaseServiceError(
            f"port {self.port} on {HOST} is taken by something that does not accept "
            f"{self.display_name} user {self.user} and its password: stop it or set "
            f"{self.port_env} to a free port ({detail})"
        )

    def _wait_ready(self, deadline: float, *, log_offset: int | None) -> None:
        """Poll until a connection succeeds; fail fast if the server died."""
        last = _Probe("absent")
        while True:
            last = self._probe()
            if last.state == "ready":
                return
            if last.state == "rejected":
                raise self._rejected_error(last.detail)
            died = self._startup_failed(log_offset)
            if died:
                raise DatabaseServiceError(
                    f"{self.display_name} did not start on {HOST}:{self.port} ({died}); "
                    + self._log_tail()
                )
            if time.monotonic() >= deadline:
                detail = f" ({last.detail})" if last.detail else ""
                raise DatabaseServiceError(
                    f"{self.display_name} did not accept connections on {HOST}:{self.port} "
                    f"within {self.start_timeout:g}s{detail}; " + self._log_tail()
                )
            time.sleep(_POLL_SECONDS)

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"its log {self.log_file} cannot be read: {exc}"
        tail = "\n".join("  " + line for line in lines[-_LOG_TAIL_LINES:])
        return f"last lines of {self.log_file}:\n{tail}"

    # --- OS user, files, processes ------------------------------------------

    def _service_uid_gid(self) -> tuple[int, int] | None:
        """(uid, gid) of the OS user to run as when we are root; None otherwise."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(self.os_user)
        except KeyError:
            raise DatabaseServiceError(
                f"OS user {self.os_user} does not exist: run `make setup` "
                f"(installs Debian's {self.package}, which creates it)"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _command(self, argv: Sequence[str | Path]) -> list[str]:
        """``argv`` run as the service's OS user (``runuser -u``) when we are root."""
        args = [str(a) for a in argv]
        if os.geteuid() == 0:
            runuser = _which("runuser")
            if runuser is None:
                raise DatabaseServiceError(
                    "runuser not found: install Debian's util-linux (needed to run "
                    f"{self.display_name} as user {self.os_user} when running as root)"
                )
            return [runuser, "-u", self.os_user, "--", *args]
        return args

    def _run(self, what: str, argv: Sequence[str | Path], deadline: float) -> str:
        """Run a short command as the service user; return its output or raise with it."""
        cmd = self._command(argv)
        try:
            done = subprocess.run(
                cmd,
                cwd=self.home,
                env=_server_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=max(deadline - time.monotonic(), 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DatabaseServiceError(
                f"{self.display_name}: {what} did not finish within {self.start_timeout:g}s; "
                + self._log_tail()
            ) from exc
        except OSError as exc:
            raise DatabaseServiceError(f"{self.display_name}: {what} failed: {exc}") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            shown = "\n".join("  " + line for line in output[-_LOG_TAIL_LINES:])
            raise DatabaseServiceError(
                f"{self.display_name}: {what} failed (exit {done.returncode}); "
                f"its output ends with:\n{shown}\n{self._log_tail()}"
            )
        return done.stdout

    def _prepare_home(self) -> None:
        """Create the services dir and the server's own dir, owned by its OS user."""
        ids = self._service_uid_gid()
        try:
            _make_dirs(self.services_dir, world_traversable=ids is not None)
            if not self.home.exists():
                self.home.mkdir(mode=0o700)
            if ids is not None:
                os.chown(self.home, *ids)
            if not self.log_file.exists():
                self.log_file.touch(mode=0o600)
            if ids is not None:
                os.chown(self.log_file, *ids)
        except OSError as exc:
            raise DatabaseServiceError(
                f"cannot prepare {self.home} for {self.display_name}: {exc}; "
                f"set {ENV_SERVICES_DIR} to a directory you can write"
            ) from exc
        if ids is not None and not self.data_dir.exists():
            # Every parent must be traversable by the service user: check once, before init.
            check = subprocess.run(
                self._command(["test", "-w", self.home, "-a", "-x", self.home]),
                cwd="/",
                capture_output=True,
                check=False,
            )
            if check.returncode != 0:
                raise DatabaseServiceError(
                    f"OS user {self.os_user} cannot reach {self.home}: set {ENV_SERVICES_DIR} "
                    f"to a directory every user can traverse (default {DEFAULT_SERVICES_DIR})"
                )

    def _write_private(self, path: Path, text: str) -> None:
        """Write a file only the service user can read."""
        ids = self._service_uid_gid()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if ids is not None:
            os.chown(path, *ids)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialize start/stop/purge of this server across processes and threads."""
        try:
            _make_dirs(self.services_dir, world_traversable=os.geteuid() == 0)
            fh = (self.services_dir / f".{self.kind}.lock").open("a")
        except OSError as exc:
            raise DatabaseServiceError(
                f"cannot use {self.services_dir} for {self.display_name}: {exc}; "
                f"set {ENV_SERVICES_DIR} to a directory you can write"
            ) from exc
        with fh:
            deadline = time.monotonic() + self.start_timeout * 2
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise DatabaseServiceError(
                            f"another process holds {fh.name} for over "
                            f"{self.start_timeout * 2:g}s: is a start or stop hanging?"
                        ) from None
                    time.sleep(_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # --- per-server parts ----------------------------------------------------

    @abstractmethod
    def _find_binaries(self) -> None:
        """Locate the server's programs; raise with the install hint if missing."""

    @abstractmethod
    def _initialize(self) -> None:
        """Create ``data_dir`` from nothing (atomically: a half-done init is redone)."""

    @abstractmethod
    def _start(self, deadline: float) -> None:
        """Launch the server detached; return once launched (readiness is polled after)."""

    @abstractmethod
    def _stop(self, pid: int, deadline: float) -> None:
        """Stop the server process ``pid`` cleanly and wait until it is gone."""

    @abstractmethod
    def _server_pid(self) -> int | None:
        """The live server process started from ``data_dir``, if any."""

    @abstractmethod
    def _pid_port(self, pid: int) -> int | None:
        """The port the server process ``pid`` was started on, if known."""

    @abstractmethod
    def _startup_failed(self, log_offset: int | None) -> str:
        """Non-empty reason if the server we just launched has already died."""

    @abstractmethod
    def _connect_args(self) -> dict[str, object]: ...

    @abstractmethod
    def _classify(self, exc: sa_exc.DBAPIError) -> ProbeState: ...

    @abstractmethod
    def _create_database(self, conn: sa.Connection, name: str) -> None: ...

    @abstractmethod
    def _drop_database(self, conn: sa.Connection, name: str) -> None: ...

    @abstractmethod
    def _list_databases_sql(self) -> str: ...


class PostgresServer(DatabaseServer):
    """PostgreSQL from Debian's ``postgresql`` package, run with ``pg_ctl``.

    Init: ``initdb`` (UTF8, locale C, superuser ``dataplump`` with a
    scram-sha-256 password); ``pg_hba.conf`` allows only password logins over
    TCP from 127.0.0.1; no Unix socket. Start: ``pg_ctl -w -l server.log start``
    (``pg_ctl`` detaches the postmaster into its own session).

    With ``ssl_cert_file`` and ``ssl_key_file`` the server runs with ``ssl = on`` and
    that certificate, and ``pg_hba.conf`` takes password logins over TLS only
    (``hostssl``; ``hostnossl`` is rejected): a server that *enforces* encryption, as a
    production one should. Both files are copied beside the data dir at each start,
    owned by the server's OS user with mode 0600 (PostgreSQL refuses a key others can
    read), and ``pg_hba.conf`` is rewritten at each start to match the options.
    """

    kind: ClassVar[ServerKind] = "postgres"
    display_name: ClassVar[str] = "PostgreSQL"
    os_user: ClassVar[str] = "postgres"
    port_env: ClassVar[str] = ENV_PG_PORT
    default_port: ClassVar[int] = DEFAULT_PG_PORT
    drivername: ClassVar[str] = "postgresql+psycopg"
    admin_database: ClassVar[str | None] = "postgres"
    package: ClassVar[str] = "postgresql"
    driver_extra: ClassVar[str] = "postgres"

    def __init__(
        self,
        *,
        port: int | None = None,
        services_dir: Path | str | None = None,
        user: str = DEFAULT_USER,
        password: str | SecretStr = DEFAULT_PASSWORD,
        start_timeout: float = 60.0,
        install_root: Path | str = Path("/usr/lib/postgresql"),
        ssl_cert_file: Path | str | None = None,
        ssl_key_file: Path | str | None = None,
    ) -> None:
        """See :class:`DatabaseServer`; ``install_root`` holds ``<version>/bin`` (newest wins);
        ``ssl_cert_file`` and ``ssl_key_file`` (PEM, both or neither) turn TLS on and make
        it required."""
        super().__init__(
            port=port,
            services_dir=services_dir,
            user=user,
            password=password,
            start_timeout=start_timeout,
        )
        self.install_root = Path(install_root)
        self._bin: Path | None = None
        if (ssl_cert_file is None) != (ssl_key_file is None):
            raise DatabaseServiceError(
                "PostgreSQL with TLS needs both ssl_cert_file and ssl_key_file"
            )
        self.ssl_files: tuple[Path, Path] | None = (
            (Path(ssl_cert_file).absolute(), Path(ssl_key_file).absolute())
            if ssl_cert_file is not None and ssl_key_file is not None
            else None
        )

    def _find_binaries(self) -> None:
        if self._bin is not None:
            return
        candidates: list[tuple[tuple[int, ...], Path]] = []
        with contextlib.suppress(OSError):
            for version_dir in self.install_root.iterdir():
                bin_dir = version_dir / "bin"
                if all((bin_dir / p).is_file() for p in ("initdb", "pg_ctl", "postgres")):
                    candidates.append((_version_key(version_dir.name), bin_dir))
        if not candidates:
            raise DatabaseServiceError(
                f"PostgreSQL server binaries not found under {self.install_root}: "
                "run `make setup` (installs Debian's postgresql)"
            )
        self._bin = max(candidates)[1]

    @property
    def bin_dir(self) -> Path:
        """``/usr/lib/postgresql/<newest>/bin``."""
        self._find_binaries()
        assert self._bin is not None
        return self._bin

    def _initialize(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        partial = self.home / "data.partial"
        _remove_tree(partial)
        pwfile = self.home / ".initdb-password"
        self._write_private(pwfile, self.password.get_secret_value() + "\n")
        try:
            self._run(
                "initdb",
                [
                    self.bin_dir / "initdb",
                    f"--pgdata={partial}",
                    f"--username={self.user}",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                deadline,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (partial / "postgresql.conf").open("a") as conf:
            conf.write(_PG_CONF)
        self._write_private(partial / "pg_hba.conf", _PG_HBA)
        partial.rename(self.data_dir)

    def _start(self, deadline: float) -> None:
        options = f"-c port={self.port} -c listen_addresses={HOST}"
        # pg_hba.conf follows the options at each start, so one data dir never keeps a
        # plain-TCP login open when TLS was asked for (or refuses one when it was not).
        self._write_private(
            self.data_dir / "pg_hba.conf", _PG_HBA_SSL if self.ssl_files else _PG_HBA
        )
        if self.ssl_files is not None:
            cert, key = self.home / "server.crt", self.home / "server.key"
            try:
                self._write_private(cert, self.ssl_files[0].read_text())
                self._write_private(key, self.ssl_files[1].read_text())
            except OSError as exc:
                raise DatabaseServiceError(
                    f"cannot copy the TLS certificate or key: {exc}"
                ) from exc
            # pg_ctl hands the options to a shell: the paths are quoted for it.
            options += (
                f" -c ssl=on -c ssl_cert_file={shlex.quote(str(cert))}"
                f" -c ssl_key_file={shlex.quote(str(key))}"
            )
        timeout = max(int(deadline - time.monotonic()), 1)
        self._run(
            "pg_ctl start",
            [
                self.bin_dir / "pg_ctl",
                f"--pgdata={self.data_dir}",
                f"--log={self.log_file}",
                f"--options={options}",
                "--wait",
                f"--timeout={timeout}",
                "--silent",
                "start",
            ],
            deadline,
        )

    def _stop(self, pid: int, deadline: float) -> None:
        self._find_binaries()
        timeout = max(int(deadline - time.monotonic()), 1)
        self._run(
            "pg_ctl stop",
            [
                self.bin_dir / "pg_ctl",
                f"--pgdata={self.data_dir}",
                "--mode=fast",
                "--wait",
                f"--timeout={timeout}",
                "--silent",
                "stop",
            ],
            deadline,
        )

    def _postmaster_pid_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return []

    def _server_pid(self) -> int | None:
        lines = self._postmaster_pid_lines()
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        return pid if _process_is(pid, ("postgres", "postmaster")) else None

    def _pid_port(self, pid: int) -> int | None:
        lines = self._postmaster_pid_lines()
        if len(lines) >= 4 and lines[3].strip().isdigit():
            return int(lines[3])
        return None

    def _startup_failed(self, log_offset: int | None) -> str:
        # pg_ctl --wait already reported a failed start; only a later crash is left.
        if log_offset is not None and self._server_pid() is None:
            return "the postmaster exited"
        return ""

    def _connect_args(self) -> dict[str, object]:
        return {"connect_timeout": _CONNECT_TIMEOUT_SECONDS}

    def _classify(self, exc: sa_exc.DBAPIError) -> ProbeState:
        text = str(exc.orig or exc).lower()
        if "connection refused" in text:
            return "absent"
        if "starting up" in text or "shutting down" in text or "recovery" in text:
            return "starting"
        return "rejected"

    def _create_database(self, conn: sa.Connection, name: str) -> None:
        # template0: pristine whatever was added to template1. FILE_COPY (PostgreSQL 15+)
        # takes ~15 ms here against ~100 ms for the default WAL_LOG on a tiny template.
        version = conn.dialect.server_version_info or (0,)
        strategy = " STRATEGY FILE_COPY" if version >= (15,) else ""
        conn.execute(
            sa.text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'{strategy}")
        )

    def _drop_database(self, conn: sa.Connection, name: str) -> None:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _list_databases_sql(self) -> str:
        return "SELECT datname FROM pg_database"


_PG_CONF = f"""
# --- written by dataplump.testing.databases: a local, fast, non-durable test server ---
listen_addresses = '{HOST}'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = logical
"""

_PG_HBA = f"""\
# written by dataplump.testing.databases: password logins over TCP from {HOST} only
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   {HOST}/32   scram-sha-256
host    replication all {HOST}/32   scram-sha-256
"""

_PG_HBA_SSL = f"""\
# written by dataplump.testing.databases: password logins over TLS from {HOST} only
# TYPE     DATABASE    USER  ADDRESS      METHOD
hostssl    all         all   {HOST}/32   scram-sha-256
hostssl    replication all   {HOST}/32   scram-sha-256
hostnossl  all         all   all          reject
"""


class MariaDBServer(DatabaseServer):
    """MariaDB from Debian's ``mariadb-server`` package, run as a detached ``mariadbd``.

    Init: ``mariadb-install-db`` (no test database; ``dataplump``@``127.0.0.1``
    with a password and all privileges). Start: ``mariadbd --no-defaults`` in its
    own session (``setsid --fork``) with a pid file, a private Unix socket in
    the server's dir, and ``bind-address=127.0.0.1``. Stop: SIGTERM to the pid
    in the pid file, then wait until the process is gone.
    """

    kind: ClassVar[ServerKind] = "mariadb"
    display_name: ClassVar[str] = "MariaDB"
    os_user: ClassVar[str] = "mysql"
    port_env: ClassVar[str] = ENV_MARIADB_PORT
    default_port: ClassVar[int] = DEFAULT_MARIADB_PORT
    drivername: ClassVar[str] = "mysql+pymysql"
    admin_database: ClassVar[str | None] = None
    package: ClassVar[str] = "mariadb-server"
    driver_extra: ClassVar[str] = "mysql"

    def __init__(
        self,
        *,
        port: int | None = None,
        services_dir: Path | str | None = None,
        user: str = DEFAULT_USER,
        password: str | SecretStr = DEFAULT_PASSWORD,
        start_timeout: float = 60.0,
        search_path: str | None = None,
    ) -> None:
        """See :class:`DatabaseServer`; ``search_path`` (PATH syntax) is where to look
        for ``mariadbd``/``mysqld`` and ``mariadb-install-db`` (default: PATH plus
        ``/usr/sbin:/usr/bin``)."""
        super().__init__(
            port=port,
            services_dir=services_dir,
            user=user,
            password=password,
            start_timeout=start_timeout,
        )
        self.search_path = search_path
        self._server_bin: str | None = None
        self._install_bin: str | None = None

    @property
    def pid_file(self) -> Path:
        return self.home / "mariadbd.pid"

    @property
    def socket_path(self) -> Path:
        """Unix socket for local admin as the service user (the dir is private to it)."""
        return self.home / "mariadbd.sock"

    def _find_binaries(self) -> None:
        if self._server_bin is not None and self._install_bin is not None:
            return
        path = self.search_path
        if path is None:
            path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
        server = _which("mariadbd", path) or _which("mysqld", path)
        install = _which("mariadb-install-db", path) or _which("mysql_install_db", path)
        if server is None or install is None:
            raise DatabaseServiceError(
                "MariaDB server binaries (mariadbd, mariadb-install-db) not found: "
                "run `make setup` (installs Debian's mariadb-server)"
            )
        self._server_bin, self._install_bin = server, install

    def _common_options(self) -> list[str]:
        return [
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--innodb-buffer-pool-size=128M",
            "--innodb-log-file-size=48M",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-doublewrite=0",
        ]

    def _initialize(self) -> None:
        self._find_binaries()
        assert self._install_bin is not None
        deadline = time.monotonic() + self.start_timeout
        partial = self.home / "data.partial"
        _remove_tree(partial)
        init_sql = self.home / ".init.sql"
        self._write_private(init_sql, _mariadb_account_sql(self.user, self.password))
        try:
            self._run(
                "mariadb-install-db",
                [
                    self._install_bin,
                    "--no-defaults",
                    f"--datadir={partial}",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                    f"--extra-file={init_sql}",
                    *self._common_options(),
                ],
                deadline,
            )
        finally:
            init_sql.unlink(missing_ok=True)
        partial.rename(self.data_dir)

    def _start(self, deadline: float) -> None:
        self._find_binaries()
        assert self._server_bin is not None
        setsid = _which("setsid")
        if setsid is None:
            raise DatabaseServiceError("setsid not found: install Debian's util-linux")
        self.pid_file.unlink(missing_ok=True)
        argv = self._command(
            [
                self._server_bin,
                "--no-defaults",
                f"--datadir={self.data_dir}",
                f"--port={self.port}",
                f"--bind-address={HOST}",
                f"--socket={self.socket_path}",
                f"--pid-file={self.pid_file}",
                f"--log-error={self.log_file}",
                "--max-connections=200",
                *self._common_options(),
            ]
        )
        try:
            with self.log_file.open("ab") as log:
                # setsid --fork: the server leaves our session and process group at once,
                # so it outlives this process and ignores a Ctrl-C aimed at it.
                launcher = subprocess.run(
                    [setsid, "--fork", *argv],
                    cwd=self.home,
                    env=_server_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    check=False,
                    timeout=max(deadline - time.monotonic(), 1.0),
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DatabaseServiceError(f"MariaDB: launching mariadbd failed: {exc}") from exc
        if launcher.returncode != 0:
            raise DatabaseServiceError(
                f"MariaDB: setsid exited with {launcher.returncode}; " + self._log_tail()
            )

    def _stop(self, pid: int, deadline: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise DatabaseServiceError(
                f"MariaDB (pid {pid}) belongs to another user: stop it as root ({exc})"
            ) from exc
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                raise DatabaseServiceError(
                    f"MariaDB (pid {pid}) did not stop within {self.start_timeout:g}s; "
                    + self._log_tail()
                )
            time.sleep(_POLL_SECONDS)

    def _server_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if _process_is(pid, ("mariadbd", "mysqld")) else None

    def _pid_port(self, pid: int) -> int | None:
        for arg in _cmdline(pid):
            if arg.startswith("--port=") and arg[7:].isdigit():
                return int(arg[7:])
        return None

    def _startup_failed(self, log_offset: int | None) -> str:
        if log_offset is None:
            return ""
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(log_offset)
                new = fh.read().decode(errors="replace")
        except OSError:
            return ""
        if "Aborting" in new or "runuser:" in new or "setsid:" in new:
            return "it aborted"
        return ""

    def _connect_args(self) -> dict[str, object]:
        return {
            "connect_timeout": _CONNECT_TIMEOUT_SECONDS,
            "read_timeout": 30,
            "write_timeout": 30,
        }

    def _classify(self, exc: sa_exc.DBAPIError) -> ProbeState:
        args = getattr(exc.orig, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        if code == 2003:  # can't connect (refused)
            return "absent"
        if code in (1053, 1927):  # server shutdown in progress / connection killed
            return "starting"
        return "rejected"

    def _create_database(self, conn: sa.Connection, name: str) -> None:
        conn.execute(
            sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        )

    def _drop_database(self, conn: sa.Connection, name: str) -> None:
        # Like PostgreSQL's WITH (FORCE): end sessions still using it, so DROP cannot block.
        ids = conn.execute(
            sa.text(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = :name AND ID <> CONNECTION_ID()"
            ),
            {"name": name},
        ).scalars()
        for thread_id in list(ids):
            with contextlib.suppress(sa_exc.DBAPIError):  # it may have ended meanwhile
                conn.execute(sa.text(f"KILL CONNECTION {int(thread_id)}"))
        # A killed session rolls back before its locks go; wait for that, not for a day.
        conn.execute(sa.text("SET SESSION lock_wait_timeout = 30"))
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))

    def _list_databases_sql(self) -> str:
        return "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"


# --- module-level API ----------------------------------------------------------


def server_from_env(kind: ServerKind) -> DatabaseServer:
    """The ``postgres`` or ``mariadb`` server as the environment configures it."""
    if kind == "postgres":
        return PostgresServer.from_env()
    if kind == "mariadb":
        return MariaDBServer.from_env()
    raise DatabaseServiceError(
        f"unknown database server {kind!r}: choose one of {', '.join(SERVER_KINDS)}"
    )


def create_database(kind: ServerKind) -> str:
    """Start the server if needed, create a fresh ``dp_test_<hex>`` database, return its URL."""
    server = server_from_env(kind)
    server.ensure_running()
    return server.create_database()


def drop_database(url: str) -> None:
    """Drop the database a :func:`create_database` URL names (server, port and user from it)."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError as exc:
        raise DatabaseServiceError(f"not a database URL: {_one_line(exc)}") from exc
    backend = parsed.get_backend_name()
    cls: type[DatabaseServer]
    if backend == "postgresql":
        cls = PostgresServer
    elif backend in ("mysql", "mariadb"):
        cls = MariaDBServer
    else:
        raise DatabaseServiceError(
            f"cannot drop a database on {backend!r}: only postgresql and mysql URLs are managed"
        )
    if parsed.database is None:
        raise DatabaseServiceError("the URL names no database to drop")
    if parsed.host not in (None, HOST):
        raise DatabaseServiceError(
            f"the URL points at {parsed.host}: only the local test servers on {HOST} are managed"
        )
    server = cls(
        port=parsed.port,
        user=parsed.username or DEFAULT_USER,
        password=parsed.password or DEFAULT_PASSWORD,
    )
    server.drop_database(parsed.database)


# --- helpers -------------------------------------------------------------------


def _port_from_env(var: str, default: int) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DatabaseServiceError(f"{var}={raw!r} is not a TCP port: use a number 1-65535")
    return int(raw)


def _check_name(name: str, what: str) -> str:
    if not _NAME_RE.match(name):
        raise DatabaseServiceError(
            f"{what} {name!r} is not a plain identifier: use letters, digits and _"
        )
    return name


def _database_name(database: str) -> str:
    """A database name, or the name in a URL, checked to be a plain identifier."""
    if "://" in database:
        try:
            name = sa.make_url(database).database
        except sa_exc.ArgumentError as exc:
            raise DatabaseServiceError(f"not a database URL: {_one_line(exc)}") from exc
        if not name:
            raise DatabaseServiceError("the URL names no database")
        database = name
    return _check_name(database, "database")


def _sql_string(secret: SecretStr) -> str:
    """The secret escaped for a single-quoted MariaDB string literal."""
    return secret.get_secret_value().replace("\\", "\\\\").replace("'", "\\'")


def _mariadb_account_sql(user: str, password: SecretStr) -> str:
    """SQL for mariadb-install-db's ``--extra-file``: ``user``@127.0.0.1, all privileges.

    The bootstrap runs with grant tables off, where CREATE USER and GRANT are
    refused, so the account goes straight into ``mysql.global_priv``, the way the
    install script adds ``root``.
    """
    priv_head = (
        '{"access":18446744073709551615,"plugin":"mysql_native_password","authentication_string":"'
    )
    priv = f"CONCAT('{priv_head}', PASSWORD('{_sql_string(password)}'), '\"}}')"
    # user is a checked identifier and the password is escaped, hence the noqa.
    return f"INSERT INTO mysql.global_priv VALUES ('{HOST}', '{user}', {priv});\n"  # noqa: S608


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    # SQLAlchemy appends "(Background on this error at: https://sqlalche.me/...)".
    text = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)
    return text or type(exc).__name__


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _which(program: str, path: str | None = None) -> str | None:
    if path is None:
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
    return shutil.which(program, path=path)


def _server_env() -> dict[str, str]:
    """Our environment minus libpq/MySQL variables that could redirect the tools."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "MYSQL", "MARIADB")) and k != "LD_PRELOAD"
    }
    env.setdefault("LANG", "C.UTF-8")
    return env


def _make_dirs(path: Path, *, world_traversable: bool) -> None:
    """mkdir -p; as root, directories we create get mode 0755 whatever the umask."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
            if world_traversable:
                directory.chmod(0o755)


def _remove_tree(path: Path) -> None:
    try:
        if path.exists():
            shutil.rmtree(path)
    except OSError as exc:
        raise DatabaseServiceError(f"cannot remove the half-initialized {path}: {exc}") from exc


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (after the parenthesized command name) is the state.
    state = stat.rsplit(")", 1)[-1].split()
    return bool(state) and state[0] not in ("Z", "X")


def _process_is(pid: int, names: tuple[str, ...]) -> bool:
    """``pid`` is alive and runs one of ``names`` (guards against a reused stale pid)."""
    if not _pid_alive(pid):
        return False
    args = _cmdline(pid)
    if not args:
        return False
    program = Path(args[0].split()[0]).name
    return program in names or any(program.startswith(n) for n in names)


def _version_key(name: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", name)]
    return tuple(parts) if parts else (-1,)


# --- command line ----------------------------------------------------------------


def _selected(kinds: Sequence[ServerKind]) -> list[DatabaseServer]:
    return [server_from_env(k) for k in dict.fromkeys(kinds or SERVER_KINDS)]


def _up(server: DatabaseServer) -> str:
    began = time.monotonic()
    initialized = server.data_dir.exists()
    started = server.ensure_running()
    took = time.monotonic() - began
    status = server.status()
    if not started:
        how = "already running"
    elif initialized:
        how = f"started in {took:.2f}s"
    else:
        how = f"initialized and started in {took:.2f}s"
    return f"{status} [{how}]"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dataplump.testing.databases``: exit 0 on success, 1 on error,
    3 from ``status`` when a server is not running."""
    parser = argparse.ArgumentParser(
        prog=_CLI,
        description="Run DataPlump's local PostgreSQL and MariaDB test servers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    kinds_help = "postgres, mariadb (default: both)"
    for name, help_text in (
        ("up", "start (initializing on first use) unless already running"),
        ("down", "stop the servers started from the data dirs"),
        ("status", "say whether each server runs, its port and data dir"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("kinds", nargs="*", metavar="KIND", help=kinds_help)
        if name == "down":
            cmd.add_argument(
                "--purge", action="store_true", help="also delete the data dirs and logs"
            )
    create = sub.add_parser("create-db", help="create a fresh database and print its URL")
    create.add_argument("kind", choices=SERVER_KINDS, metavar="KIND", help="postgres or mariadb")
    drop = sub.add_parser("drop-db", help="drop the database a create-db URL names")
    drop.add_argument("url")
    args = parser.parse_args(argv)
    # argparse (3.11) rejects an empty list against `choices`, so kinds are checked here.
    unknown = [k for k in getattr(args, "kinds", []) if k not in SERVER_KINDS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}: choose from {', '.join(SERVER_KINDS)}")

    try:
        if args.command == "up":
            servers = _selected(args.kinds)
            with ThreadPoolExecutor(max_workers=len(servers)) as pool:
                lines = list(pool.map(_up, servers))
            print("\n".join(lines))
        elif args.command == "down":
            for server in _selected(args.kinds):
                if args.purge:
                    stopped = "stopped, " if server.purge() else ""
                    print(f"{server.kind}: {stopped}deleted {server.home}")
                else:
                    done = "stopped" if server.stop() else "was not running from"
                    print(f"{server.kind}: {done} {server.data_dir}")
        elif args.command == "status":
            statuses = [s.status() for s in _selected(args.kinds)]
            print("\n".join(str(s) for s in statuses))
            return 0 if all(s.running for s in statuses) else 3
        elif args.command == "create-db":
            print(create_database(args.kind))
        else:
            drop_database(args.url)
    except DatabaseServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
