"""The whole pipeline through a Kafka listener that needs SASL/SCRAM-SHA-512 over TLS.

The broker is the project's own managed broker with a second listener, ``SASL_SSL``,
whose certificate is signed by a CA the test makes; its SCRAM user is written into the
metadata log when the storage is formatted (``KafkaManager(scram_users=...)``). The
pipeline file reads the password from ``${KAFKA_PASSWORD}`` and checks the broker's
certificate against ``ssl_ca_location``; ``run --once`` loads the lake through that
listener only, with exact counts. A wrong password and an untrusted certificate are each
one clear line, and the planted password is in no output and no file of any run (the
broker's own log included)."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from dataplump.services.kafka import KafkaManager, free_port
from tests.support.cli import CliResult, run_command
from tests.support.docs import yaml_block
from tests.support.tls import CaPair, invalid, server_certificate

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

MARK = uuid.uuid4().hex[:10]
USER = "dp-pipeline"
PASSWORD = f"PlantedScram{MARK}"
ROWS = 120
BOUND = {"extract": 20.0, "run": 60.0}
"""Seconds within which a refused login or handshake must be reported (`run` starts
every stage's process first; on 2 shared cores that alone takes 10-15 s)."""

DOCS_KAFKA = yaml_block("security.md", "## Kafka over SASL/SCRAM and TLS")
"""The `kafka:` section docs/security.md shows, run as written but for the address."""
DOCS_BOOTSTRAP = "kafka1.example.com:9093"

PIPELINE = """\
pipeline: {{name: {name}}}
source: {{url: "sqlite:///{db}"}}
{kafka}
sinks:
  lake: {{kind: delta, path: lake}}
tables:
  orders:
    primary_key: id
    contract:
      columns:
        id: {{type: int64, not_null: true}}
        amount: {{type: "decimal(10,2)", min: 0}}
"""


COMMANDS = pytest.mark.parametrize(
    "command",
    [("extract", "--once"), ("run", "--once", "--metrics-port", "0")],
    ids=lambda command: command[0],
)


@dataclass(frozen=True)
class TlsBroker(CaPair):
    plaintext: str
    """Bootstrap of the PLAINTEXT listener (only the broker's own readiness check)."""
    secured: str
    """Bootstrap of the SASL_SSL listener (the only one the pipeline is given)."""
    data_dir: Path


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    tls = tmp_path_factory.mktemp("kafka-tls-certs")
    cas, certificate = server_certificate(tls, "broker")
    keystore = certificate.bundle(tls / "broker-keystore.pem")
    port, secured, controller = free_port(), free_port(), free_port()
    data_dir = tmp_path_factory.mktemp("kafka-tls")
    manager = KafkaManager(
        data_dir,
        port=port,
        scram_users={USER: PASSWORD},
        scram_mechanisms=("SCRAM-SHA-512",),
        extra_properties={
            "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{secured},"
            f"CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{secured}",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            # A PEM key store: the unencrypted PKCS#8 key, then the certificate.
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
        },
    )
    manager.install()
    try:
        manager.up()
        yield TlsBroker(
            cas.ca,
            cas.other_ca,
            plaintext=f"127.0.0.1:{port}",
            secured=f"127.0.0.1:{secured}",
            data_dir=data_dir,
        )
    finally:
        manager.down()


@dataclass(frozen=True)
class Work:
    folder: Path
    name: str

    def pipeline(self, broker: TlsBroker, *, ca: Path) -> Path:
        """The pipeline file, with the docs' `kafka:` section; ``ca`` is copied to where
        that section's relative `ssl_ca_location` points (beside the pipeline file)."""
        assert DOCS_BOOTSTRAP in DOCS_KAFKA
        assert f"sasl_username: {USER}\n" in DOCS_KAFKA
        (self.folder / "tls").mkdir(exist_ok=True)
        shutil.copyfile(ca, self.folder / "tls" / "ca.pem")
        kafka = DOCS_KAFKA.replace(DOCS_BOOTSTRAP, broker.secured).strip()
        path = self.folder / "dataplump.yaml"
        path.write_text(PIPELINE.format(name=self.name, db=self.folder / "shop.db", kafka=kafka))
        return path

    def dataplump(self, *args: str, password: str = PASSWORD) -> CliResult:
        return run_command(
            *args, logs=self.folder / "logs", cwd=self.folder,
            env={"KAFKA_PASSWORD": password}, timeout=300,
        )  # fmt: skip


@pytest.fixture
def work(tmp_path: Path) -> Work:
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2))")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?)",
            [(i, -i - 0.5 if invalid(i) else i + 0.25) for i in range(1, ROWS + 1)],
        )
    return Work(tmp_path, f"tls{uuid.uuid4().hex[:8]}")


def leaks(text: str) -> bool:
    return PASSWORD.lower() in text.lower()


def assert_no_file_holds_the_password(*folders: Path) -> int:
    checked = 0
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert not leaks(path.read_bytes().decode("utf-8", "replace")), path
                checked += 1
    return checked


def test_run_once_goes_through_scram_over_tls_exactly(work: Work, tls_broker: TlsBroker) -> None:
    config = work.pipeline(tls_broker, ca=tls_broker.ca.cert)
    run = work.dataplump("run", "-c", str(config), "--once", "--metrics-port", "0")
    assert run.returncode == 0, run.describe()
    valid = [i for i in range(1, ROWS + 1) if not invalid(i)]
    lake = pl.read_delta(str(work.folder / "lake" / "orders")).sort("id")
    assert lake["id"].to_list() == valid
    dlq = pl.read_delta(str(work.folder / "lake" / "_dlq"))
    assert dlq.height == ROWS - len(valid)
    assert not leaks(run.stdout + run.stderr), run.describe()
    # the lake's tables hold no password either (read as text: `_alerts` keeps errors)
    for table in (p.parent for p in (work.folder / "lake").rglob("_delta_log")):
        frame = pl.read_delta(str(table))
        assert not leaks(frame.select(pl.all().cast(pl.String, strict=False)).write_csv())
    status = work.dataplump("status", "-c", str(config), "--json")
    assert not leaks(status.stdout + status.stderr), status.describe()
    shown = work.dataplump("config", "check", "-c", str(config), "--show")
    assert shown.returncode == 0, shown.describe()
    assert "SASL_SSL" in shown.stdout
    assert str(work.folder / "tls" / "ca.pem") in shown.stdout  # resolved beside the file
    assert not leaks(shown.stdout + shown.stderr), shown.describe()
    assert assert_no_file_holds_the_password(work.folder, tls_broker.data_dir) > 10


@COMMANDS
def test_a_wrong_password_is_one_line_without_it(
    work: Work, tls_broker: TlsBroker, command: tuple[str, ...]
) -> None:
    config = work.pipeline(tls_broker, ca=tls_broker.ca.cert)
    wrong = f"Wr0ngScram{MARK}"
    result = work.dataplump(*command, "-c", str(config), password=wrong)
    print(f"wrong SCRAM password ({' '.join(command)}): exit {result.returncode} "
          f"after {result.seconds:.1f}s: {result.stderr.strip()}")  # fmt: skip
    assert result.returncode == 1, result.describe()
    assert wrong.lower() not in (result.stdout + result.stderr).lower(), result.describe()
    assert not leaks(result.stdout + result.stderr), result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    line = result.stderr_lines[0]
    assert line.startswith("error: "), result.describe()
    assert "authentication" in line.lower(), result.describe()
    assert tls_broker.secured in line, result.describe()
    assert result.seconds < BOUND[command[0]], result.describe()
    assert_no_file_holds_the_password(work.folder)


@COMMANDS
def test_an_untrusted_certificate_is_one_line(
    work: Work, tls_broker: TlsBroker, command: tuple[str, ...]
) -> None:
    config = work.pipeline(tls_broker, ca=tls_broker.other_ca.cert)
    result = work.dataplump(*command, "-c", str(config))
    print(f"untrusted certificate ({' '.join(command)}): exit {result.returncode} "
          f"after {result.seconds:.1f}s: {result.stderr.strip()}")  # fmt: skip
    assert result.returncode == 1, result.describe()
    assert not leaks(result.stdout + result.stderr), result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    line = result.stderr_lines[0]
    assert line.startswith("error: "), result.describe()
    assert "certificate verify failed" in line, result.describe()
    assert tls_broker.secured in line, result.describe()
    assert result.seconds < BOUND[command[0]], result.describe()
    assert not (work.folder / "lake" / "orders").exists()
