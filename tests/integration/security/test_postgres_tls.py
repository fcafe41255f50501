"""PostgreSQL as source and warehouse over TLS, with a password, on a server that
enforces both.

The test runs a PostgreSQL server of its own (``PostgresServer(ssl_cert_file=...,
ssl_key_file=...)``): ``ssl = on`` with a certificate signed by a CA the test makes, and
a ``pg_hba.conf`` that takes only ``hostssl`` logins with scram-sha-256 (``hostnossl``
is rejected). The pipeline's URLs read the role's password from ``${PGPASS}`` and ask for
``sslmode=verify-full`` with that CA as ``sslrootcert``. ``run --once`` extracts from it
and loads a Delta lake and a warehouse schema on it, with exact counts; a connection
without TLS, an untrusted server certificate and a wrong password each end in one clear
line with the URL masked; the planted password is in no output and no file of any run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import make_conninfo

from dataplump.testing.databases import PostgresServer
from tests.support.cli import CliResult, run_command
from tests.support.docs import yaml_block
from tests.support.private_postgres import private_postgres
from tests.support.tls import CaPair, invalid, server_certificate

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

MARK = uuid.uuid4().hex[:10]
ROLE = f"dp_tls_{MARK}"
PASSWORD = f"PlantedPg{MARK}"
ROWS = 90
SCHEMA = "curated"

DOCS_SNIPPET = yaml_block("security.md", "## PostgreSQL with a password and TLS (`sslmode`)")
"""The `source:` and `sinks:` sections docs/security.md shows, run as written but for the
server's address, the role, the database and the CA file."""
DOCS_URL = (
    "postgresql+psycopg://dp_etl:${PGPASS}@db.example.com:5432/shop"
    "?sslmode=verify-full&sslrootcert=/etc/dataplump/pg-ca.pem"
)

PIPELINE = """\
pipeline: {{name: {name}}}
{snippet}
kafka: {{bootstrap_servers: "{bootstrap}"}}
tables:
  orders:
    primary_key: id
    sinks: [lake, warehouse]
    contract:
      columns:
        id: {{type: int64, not_null: true}}
        amount: {{type: "decimal(10,2)", min: 0}}
"""


@dataclass(frozen=True)
class TlsPostgres(CaPair):
    server: PostgresServer
    database: str


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsPostgres]:
    tls = tmp_path_factory.mktemp("pg-tls-certs")
    cas, certificate = server_certificate(tls, "postgres")
    with private_postgres(
        "pgtls", ssl_cert_file=certificate.cert, ssl_key_file=certificate.key
    ) as server:
        database = sa.make_url(server.create_database()).database
        assert database
        with server._admin("set up the role") as conn:
            conn.exec_driver_sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            conn.exec_driver_sql(f'GRANT CREATE ON DATABASE "{database}" TO {ROLE}')
        admin = sa.create_engine(server.url(database), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"GRANT ALL ON SCHEMA public TO {ROLE}")
            conn.exec_driver_sql("CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2))")
            conn.execute(
                sa.text(
                    "INSERT INTO orders SELECT i, CASE WHEN i % 9 = 0 THEN -i ELSE i END + 0.25"
                    " FROM generate_series(1, :rows) AS i"
                ),
                {"rows": ROWS},
            )
            conn.exec_driver_sql(f"ALTER TABLE orders OWNER TO {ROLE}")
        admin.dispose()
        yield TlsPostgres(cas.ca, cas.other_ca, server=server, database=database)


@dataclass(frozen=True)
class Work:
    folder: Path
    name: str
    pg: TlsPostgres
    bootstrap: str

    def pipeline(
        self, *, sslmode: str = "verify-full", ca: Path | None = None, sink_ca: Path | None = None
    ) -> Path:
        """The pipeline file with the docs' snippet (plus a lake); ``ca`` is the source's
        `sslrootcert`, ``sink_ca`` the warehouse's (both the test CA unless given)."""
        assert DOCS_SNIPPET.count(DOCS_URL) == 2
        at = f"{ROLE}:${{PGPASS}}@127.0.0.1:{self.pg.server.port}/{self.pg.database}"
        url = DOCS_URL.replace("dp_etl:${PGPASS}@db.example.com:5432/shop", at)
        url = url.replace("sslmode=verify-full", f"sslmode={sslmode}")
        source_ca, warehouse_ca = ca or self.pg.ca.cert, sink_ca or ca or self.pg.ca.cert
        source, warehouse = DOCS_SNIPPET.split("sinks:\n")
        snippet = (
            source.replace(DOCS_URL, url.replace("/etc/dataplump/pg-ca.pem", str(source_ca)))
            + "sinks:\n  lake: {kind: delta, path: lake}\n"
            + warehouse.replace(
                DOCS_URL, url.replace("/etc/dataplump/pg-ca.pem", str(warehouse_ca))
            )
        )
        path = self.folder / f"dataplump-{sslmode}.yaml"
        path.write_text(
            PIPELINE.format(name=self.name, snippet=snippet.strip(), bootstrap=self.bootstrap)
        )
        return path

    def dataplump(self, *args: str, password: str = PASSWORD) -> CliResult:
        return run_command(
            *args, logs=self.folder / "logs", cwd=self.folder, env={"PGPASS": password},
            timeout=300,
        )  # fmt: skip


@pytest.fixture
def work(tmp_path: Path, tls_postgres: TlsPostgres, kafka_bootstrap: str) -> Work:
    return Work(tmp_path, f"pgtls{uuid.uuid4().hex[:8]}", tls_postgres, kafka_bootstrap)


def leaks(text: str) -> bool:
    return PASSWORD.lower() in text.lower()


def test_the_server_refuses_a_connection_without_tls(tls_postgres: TlsPostgres) -> None:
    """The server enforces TLS: the same role and password over plain TCP are refused."""
    server = tls_postgres.server
    login = make_conninfo(
        host="127.0.0.1", port=server.port, dbname=tls_postgres.database, user=ROLE,
        password=PASSWORD, connect_timeout=5,
    )  # fmt: skip
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(login, sslmode="disable").close()
    verified = make_conninfo(login, sslmode="verify-full", sslrootcert=str(tls_postgres.ca.cert))
    with psycopg.connect(verified) as c:  # the same login over TLS is taken
        row = c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
    with sa.create_engine(server.url()).connect() as conn:  # the admin login: TLS too
        rules = conn.exec_driver_sql(
            "SELECT type, array_to_string(database, ','), address, auth_method"
            " FROM pg_hba_file_rules"
        ).all()
    assert {tuple(rule) for rule in rules} == {
        ("hostssl", "all", "127.0.0.1", "scram-sha-256"),
        ("hostssl", "replication", "127.0.0.1", "scram-sha-256"),
        ("hostnossl", "all", "all", "reject"),
    }


def test_run_once_over_verified_tls_is_exact(work: Work) -> None:
    config = work.pipeline()
    run = work.dataplump("run", "-c", str(config), "--once", "--metrics-port", "0")
    assert run.returncode == 0, run.describe()
    valid = [i for i in range(1, ROWS + 1) if not invalid(i)]
    lake = pl.read_delta(str(work.folder / "lake" / "orders")).sort("id")
    assert lake["id"].to_list() == valid
    assert pl.read_delta(str(work.folder / "lake" / "_dlq")).height == ROWS - len(valid)
    server = work.pg.server
    with sa.create_engine(server.url(work.pg.database)).connect() as conn:
        query = f"SELECT id FROM {SCHEMA}.orders ORDER BY id"  # noqa: S608 (a constant)
        ids = conn.exec_driver_sql(query).scalars()
        assert list(ids) == valid
    output = run.stdout + run.stderr
    assert not leaks(output), run.describe()
    for args in (("status", "--json"), ("config", "check", "--show")):
        shown = work.dataplump(*args, "-c", str(config))
        assert shown.returncode in (0, 1), shown.describe()
        assert not leaks(shown.stdout + shown.stderr), shown.describe()
    assert f"{ROLE}:***@" in shown.stdout, shown.describe()  # config check --show: masked
    checked = 0
    for path in work.folder.rglob("*"):
        if path.is_file():
            assert not leaks(path.read_bytes().decode("utf-8", "replace")), path
            checked += 1
    for table in (p.parent for p in (work.folder / "lake").rglob("_delta_log")):
        frame = pl.read_delta(str(table))
        assert not leaks(frame.select(pl.all().cast(pl.String, strict=False)).write_csv())
    assert checked > 10


@pytest.mark.parametrize(
    ("sslmode", "wrong_ca", "password", "said"),
    [
        ("disable", False, PASSWORD, "takes only encrypted connections"),
        ("verify-full", True, PASSWORD, "certificate verify failed"),
        ("verify-full", False, f"Wr0ngPg{MARK}", "rejected the login of user"),
    ],
    ids=["without TLS", "untrusted certificate", "wrong password"],
)
def test_a_refused_connection_is_one_line_without_the_password(
    work: Work, sslmode: str, wrong_ca: bool, password: str, said: str
) -> None:
    config = work.pipeline(sslmode=sslmode, ca=work.pg.other_ca.cert if wrong_ca else None)
    result = work.dataplump("extract", "--once", "-c", str(config), password=password)
    print(f"{sslmode} (wrong CA: {wrong_ca}): exit {result.returncode} after "
          f"{result.seconds:.1f}s: {result.stderr.strip()}")  # fmt: skip
    assert result.returncode == 1, result.describe()
    output = result.stdout + result.stderr
    assert not leaks(output), result.describe()
    assert password.lower() not in output.lower(), result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    line = result.stderr_lines[0]
    assert line.startswith("error: "), result.describe()
    assert said in line, result.describe()
    assert f"{ROLE}:***@127.0.0.1:{work.pg.server.port}" in line, result.describe()


def test_a_warehouse_with_an_untrusted_certificate_stops_the_run(work: Work) -> None:
    """A TLS failure is a wrong setting, not an outage: the loader stops with one line
    instead of retrying a connection that can never succeed."""
    config = work.pipeline(sink_ca=work.pg.other_ca.cert)
    result = work.dataplump("run", "-c", str(config), "--once", "--metrics-port", "0")
    print(f"warehouse with an untrusted certificate: exit {result.returncode} after "
          f"{result.seconds:.1f}s: {result.stderr.strip()}")  # fmt: skip
    assert result.returncode == 1, result.describe()
    assert not leaks(result.stdout + result.stderr), result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    line = result.stderr_lines[0]
    assert line.startswith("error: "), result.describe()
    assert "sink `warehouse`" in line, result.describe()
    assert "certificate verify failed" in line, result.describe()
    assert f"{ROLE}:***@127.0.0.1:{work.pg.server.port}" in line, result.describe()
    assert "again in" not in result.stdout + result.stderr, result.describe()  # no retry
    assert result.seconds < 60, result.describe()
