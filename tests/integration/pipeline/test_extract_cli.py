"""Bad input through ``dataplump extract --once``, run as a real process.

The design's promise: bad input gets a clear error. Each failure below must end the
command with exit 1 and one ``error:`` line on stderr (no traceback) that says what is
wrong; a secret never appears; a config error names the file and the line.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dataplump.pipeline import topics
from dataplump.services.kafka import free_port
from tests.support.cli import CliResult
from tests.support.extraction import (
    Kind,
    OrdersDb,
    is_valid,
    orders_contract,
    orders_table,
    run_extract,
    write_pipeline,
)
from tests.support.topics import headers_of, key_of, read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

PASSWORD = "Sup3r-S3cret!pw/%"
"""A wrong password: it must never be shown, in any of its forms."""
UNREACHABLE_BOUND = 45.0
"""Seconds within which an unreachable Kafka must be reported (measured: about 33 s, the
30 s timeout of creating the topics plus start-up)."""
ROWS = 140


def one_error_line(result: CliResult) -> str:
    """The single ``error:`` line of a failed run (and nothing else on stderr)."""
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    [line] = result.stderr_lines
    assert line.startswith("error: "), result.describe()
    return line[len("error: ") :]


def pipeline_name() -> str:
    return f"cli{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sqlite_orders(sqlite_url: str) -> Iterator[OrdersDb]:
    db = OrdersDb("sqlite", sqlite_url)
    db.create()
    db.insert(range(1, ROWS + 1))
    yield db
    db.close()


def orders_pipeline(tmp_path: Path, url: str, bootstrap: str, kind: Kind = "sqlite") -> Path:
    return write_pipeline(
        tmp_path / "dataplump.yaml",
        name=pipeline_name(),
        url=url,
        bootstrap=bootstrap,
        tables={"orders": orders_table(kind, mode="full", batch_size=30)},
    )


def test_successful_run_prints_the_summary_table(
    tmp_path: Path, kafka_bootstrap: str, sqlite_orders: OrdersDb
) -> None:
    config = orders_pipeline(tmp_path, sqlite_orders.url, kafka_bootstrap)
    result = run_extract(config, logs=tmp_path / "logs")
    assert result.returncode == 0, result.describe()
    assert result.stderr == "", result.describe()
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    assert re.fullmatch(r"extracted \(run \d{8}T\d{6}Z-[0-9a-f]{6}\)", " ".join(lines[0]))
    assert lines[1] == ["table", "read", "valid", "invalid", "batches", "rows/s", "seconds"]
    invalid = sum(1 for i in range(1, ROWS + 1) if not is_valid(i))
    assert lines[2][:5] == ["orders", str(ROWS), str(ROWS - invalid), str(invalid), "5"]
    assert len(lines) == 3, result.stdout


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgres", id="pg", marks=[pytest.mark.postgres]),
        pytest.param("mariadb", id="mariadb", marks=[pytest.mark.mariadb]),
    ],
)
def test_wrong_password_is_one_line_that_never_shows_it(
    tmp_path: Path, kafka_bootstrap: str, request: pytest.FixtureRequest, kind: Kind
) -> None:
    url = sa.make_url(request.getfixturevalue(f"{kind}_url"))
    OrdersDb(kind, url.render_as_string(hide_password=False)).create()
    wrong = url.set(password=PASSWORD).render_as_string(hide_password=False)
    assert "Sup3r-S3cret%21pw%2F%25" in wrong or "Sup3r-S3cret!pw%2F%25" in wrong
    config = orders_pipeline(tmp_path, wrong, kafka_bootstrap, kind)

    result = run_extract(config, logs=tmp_path / "logs")
    message = one_error_line(result)
    assert "rejected the login of user `dataplump`" in message
    assert "check the user and password in `source.url`" in message
    for shown in (result.stdout, result.stderr):
        assert "S3cret" not in shown  # neither raw nor URL-quoted


def test_missing_table_is_one_line_with_the_closest_name(
    tmp_path: Path, kafka_bootstrap: str, sqlite_orders: OrdersDb
) -> None:
    config = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=pipeline_name(),
        url=sqlite_orders.url,
        bootstrap=kafka_bootstrap,
        tables={"order": {"primary_key": "id"}},
    )
    message = one_error_line(run_extract(config, logs=tmp_path / "logs"))
    assert message.startswith("table `order` not found in the default schema of SQLite")
    assert "did you mean `orders`?" in message
    assert "fix the name under `tables:`" in message


def test_unknown_table_option_names_the_closest_and_lists_the_tables(
    tmp_path: Path, kafka_bootstrap: str, sqlite_orders: OrdersDb
) -> None:
    config = orders_pipeline(tmp_path, sqlite_orders.url, kafka_bootstrap)
    started = time.monotonic()
    message = one_error_line(run_extract(config, "-t", "ordres", logs=tmp_path / "logs"))
    assert message.startswith(f"no table `ordres` in {config}")
    assert "did you mean `orders`?" in message
    assert message.endswith("(tables: orders)")
    assert time.monotonic() - started < 15  # refused before touching Kafka or the database


INLINE_CONTRACT = """\
pipeline: {{name: {name}}}
source: {{url: '{url}'}}
kafka: {{bootstrap_servers: '{bootstrap}'}}
tables:
  orders:
    primary_key: id
    contract:
      columns:
        id: {{type: int64, not_null: true}}
        amount: {{type: "decimal(10,2)", min: 0}}
      rules:
        - unique: [id, amonut]
"""


def test_contract_rule_naming_an_undeclared_column_is_a_config_error_with_its_line(
    tmp_path: Path, kafka_bootstrap: str, sqlite_orders: OrdersDb
) -> None:
    config = tmp_path / "dataplump.yaml"
    text = INLINE_CONTRACT.format(name=pipeline_name(), url=sqlite_orders.url, bootstrap="x:1")
    config.write_text(text)
    line = text.splitlines().index("        - unique: [id, amonut]") + 1
    column = text.splitlines()[line - 1].index("amonut") + 1

    message = one_error_line(run_extract(config, logs=tmp_path / "logs"))
    assert message == (
        f"{config}:{line}:{column}: tables.orders.contract.rules[0].unique[1]: table rule"
        " `unique` names column `amonut`, which the contract does not declare; did you mean"
        " `amount`?"
    )


def test_contract_file_naming_an_undeclared_column_names_that_file_and_line(
    tmp_path: Path, sqlite_orders: OrdersDb
) -> None:
    contract = orders_contract("sqlite")
    contract["rules"] = [{"expression_is_true": "discount >= 0"}]
    (tmp_path / "orders.contract.json").write_text(json.dumps(contract, indent=2))
    config = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=pipeline_name(),
        url=sqlite_orders.url,
        bootstrap="127.0.0.1:1",
        tables={"orders": {"primary_key": "id", "contract": "orders.contract.json"}},
    )
    rule_line = (tmp_path / "orders.contract.json").read_text().splitlines()
    line = next(n for n, text in enumerate(rule_line, 1) if "discount" in text)

    message = one_error_line(run_extract(config, logs=tmp_path / "logs"))
    assert f"orders.contract.json:{line}:" in message
    assert "rules[0].expression_is_true" in message
    assert '"discount" not found' in message


def test_contract_column_missing_from_the_table_sends_every_row_to_the_dlq(
    tmp_path: Path, kafka_bootstrap: str, sqlite_orders: OrdersDb
) -> None:
    """The table lacks a column the contract declares: by the documented default
    (`on_missing_column: reject_row`) every row is kept in the DLQ with that reason."""
    contract = orders_contract("sqlite")
    contract["columns"]["discount"] = {"type": "decimal(10,2)"}
    name = pipeline_name()
    config = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=name,
        url=sqlite_orders.url,
        bootstrap=kafka_bootstrap,
        tables={"orders": orders_table("sqlite", mode="full", batch_size=70, contract=contract)},
    )
    result = run_extract(config, logs=tmp_path / "logs")
    assert result.returncode == 0, result.describe()
    assert read_committed(kafka_bootstrap, topics.active(name, "orders")) == []
    dlq = read_committed(kafka_bootstrap, topics.dlq(name, "orders"))
    assert [key_of(m) for m in dlq] == list(range(1, ROWS + 1))
    for message in dlq:
        reasons = json.loads(headers_of(message)["dp.error.reasons"])
        assert ("missing_column", "discount") in {(r["rule"], r["column"]) for r in reasons}


def test_a_bad_value_is_quoted_in_the_error_line(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Error lines are text, not Rich markup: `[none]` must not vanish from them."""
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:  # a placeholder text in an INTEGER column
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1, 3), (2, '[none]')")
    config = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=pipeline_name(),
        url=f"sqlite:///{db}",
        bootstrap=kafka_bootstrap,
        tables={"orders": {"primary_key": "id"}},
    )
    message = one_error_line(run_extract(config, logs=tmp_path / "logs"))
    assert "column `qty` of `orders` (INTEGER) holds '[none]'" in message


def test_unreachable_kafka_is_one_line_within_a_bounded_time(
    tmp_path: Path, sqlite_orders: OrdersDb
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    config = orders_pipeline(tmp_path, sqlite_orders.url, closed)
    result = run_extract(config, logs=tmp_path / "logs", timeout=180)
    print(f"unreachable Kafka: exit {result.returncode} after {result.seconds:.1f}s")
    message = one_error_line(result)
    assert closed in message
    assert result.seconds < UNREACHABLE_BOUND, result.describe()
