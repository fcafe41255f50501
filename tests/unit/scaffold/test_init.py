"""``dataplump init`` on SQLite: types, keys, cursor choice, sampled rules, quoting of odd
names, no secret on disk, and never overwriting without --force."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.config import load_config
from dataplump.contracts import Contract
from dataplump.engine import check_steps
from dataplump.scaffold import ScaffoldError, scaffold
from dataplump.scaffold.plan import default_name, password_variable
from dataplump.scaffold.propose import (
    ColumnProposal,
    TableProposal,
    choose_cursor_name,
    contract_type,
    verify,
)
from dataplump.scaffold.reflect import ReflectedTable
from dataplump.scaffold.render import sql_name, without_password, yaml_str
from dataplump.sources import SourceColumn

runner = CliRunner()


def make_db(path: Path, script: str, rows: dict[str, list[tuple[Any, ...]]] | None = None) -> str:
    with sqlite3.connect(path) as db:
        db.executescript(script)
        for table, values in (rows or {}).items():
            marks = ", ".join("?" * len(values[0]))
            db.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)  # noqa: S608
    return f"sqlite:///{path}"


def read_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


SHOP = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT,
                        created_at TIMESTAMP NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                     amount NUMERIC(10,2), status TEXT, updated_at TIMESTAMP NOT NULL);
"""


def shop_rows(customers: int = 30, orders: int = 60) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "customers": [
            (i, f"name {i}", ["NO", "SE", "DK"][i % 3], "2024-01-01 10:00:00")
            for i in range(1, customers + 1)
        ],
        "orders": [
            (
                i,
                1 + i % customers,
                f"{i}.25",
                ["new", "paid"][i % 2],
                f"2024-02-01 10:00:{i % 60:02d}",
            )
            for i in range(1, orders + 1)
        ],
    }


@pytest.fixture
def shop(tmp_path: Path) -> str:
    return make_db(tmp_path / "shop.db", SHOP, shop_rows())


# --- the whole folder ----------------------------------------------------------------


def test_writes_a_folder_config_check_accepts(tmp_path: Path, shop: str) -> None:
    folder = tmp_path / "pipe"
    result = scaffold(shop, folder)
    assert result.problems == []
    names = sorted(str(p.relative_to(folder)) for p in result.written)
    assert names == [
        "contracts/customers.yaml",
        "contracts/orders.output.yaml",
        "contracts/orders.yaml",
        "dataplump.yaml",
        "steps/customers.py",
    ]
    config = load_config(folder / "dataplump.yaml", env={})
    assert config.name == "shop"
    assert config.sinks["lake"].kind == "delta"
    assert config.sinks["lake"].path == folder / "lake"
    assert config.kafka.is_managed
    assert [step.kind for step in config.transform.steps_for("customers")] == ["sql", "pandas"]
    for table in config.transform.steps:
        assert check_steps(config, table) == []
    # the CLI's own check agrees
    check = runner.invoke(app, ["config", "check", "-c", str(folder / "dataplump.yaml")])
    assert check.exit_code == 0, check.output


def test_types_keys_and_not_null(tmp_path: Path) -> None:
    url = make_db(
        tmp_path / "types.db",
        """CREATE TABLE t (id INTEGER PRIMARY KEY, n NUMERIC(12,3) NOT NULL, r REAL, s TEXT,
             v VARCHAR(20), b BOOLEAN, d DATE, ts DATETIME, raw BLOB, tm TIME)""",
        {
            "t": [
                (1, "1.5", 0.5, "x", "y", 1, "2024-01-01", "2024-01-01 00:00:00", b"\x00", "10:00")
            ]
        },
    )
    result = scaffold(url, tmp_path / "pipe")
    assert result.problems == []
    contract = read_yaml(tmp_path / "pipe" / "contracts" / "t.yaml")
    types = {name: spec["type"] for name, spec in contract["columns"].items()}
    assert types == {
        "id": "int64",
        "n": "decimal(12,3)",
        "r": "double",
        "s": "string",
        "v": "string",
        "b": "boolean",
        "d": "date",
        "ts": "timestamp",
        "raw": "bytes",
    }  # `tm` (TIME) has no contract type: left out, said so in a comment
    assert "# tm: TIME; not declared" in (tmp_path / "pipe" / "contracts" / "t.yaml").read_text()
    assert contract["columns"]["id"] == {"type": "int64", "not_null": True, "unique": True}
    assert contract["columns"]["n"]["not_null"] is True
    assert "not_null" not in contract["columns"]["r"]


def test_contract_types_of_arrow_types() -> None:
    assert contract_type(pa.int32()) == "int32"
    assert contract_type(pa.uint8()) == "int16"
    assert contract_type(pa.uint32()) == "int64"
    assert contract_type(pa.uint64()) == "decimal(20,0)"
    assert contract_type(pa.decimal128(38, 10)) == "decimal(38,10)"
    assert contract_type(pa.decimal256(40, 2)) is None
    assert contract_type(pa.float32()) == "float"
    assert contract_type(pa.timestamp("us", tz="UTC")) == "timestamptz"
    assert contract_type(pa.timestamp("us")) == "timestamp"
    assert contract_type(pa.time64("us")) is None
    for arrow in (pa.uint8(), pa.uint32(), pa.uint64(), pa.int8()):
        declared = contract_type(arrow)
        assert declared is not None
        spec = Contract.from_config("t", {"columns": {"x": declared}}).columns["x"]
        assert spec.logical_type.accepts(arrow), (arrow, declared)


def test_composite_key_is_a_unique_table_rule(tmp_path: Path) -> None:
    url = make_db(
        tmp_path / "k.db",
        "CREATE TABLE lines (order_id INTEGER NOT NULL, line INTEGER NOT NULL, qty INTEGER,"
        " PRIMARY KEY (order_id, line))",
        {"lines": [(1, 1, 2), (1, 2, 3), (2, 1, 1)]},
    )
    scaffold(url, tmp_path / "pipe")
    pipeline = read_yaml(tmp_path / "pipe" / "dataplump.yaml")
    assert pipeline["tables"]["lines"]["primary_key"] == ["order_id", "line"]
    contract = read_yaml(tmp_path / "pipe" / "contracts" / "lines.yaml")
    assert contract["rules"] == [{"name": "unique_key", "unique": ["order_id", "line"]}]
    assert contract["columns"]["order_id"] == {"type": "int64", "not_null": True}


def test_unique_constraint_stands_in_for_a_missing_primary_key(tmp_path: Path) -> None:
    url = make_db(
        tmp_path / "u.db",
        "CREATE TABLE u (code TEXT NOT NULL UNIQUE, label TEXT); CREATE TABLE loose (a TEXT);",
        {"u": [("a", "x")], "loose": [("z",)]},
    )
    result = scaffold(url, tmp_path / "pipe")
    assert [p.name for p in result.plan.proposals] == ["u"]
    assert result.plan.proposals[0].table.primary_key == ("code",)
    (skipped,) = result.plan.skipped
    assert skipped.name == "loose"
    assert "no primary key" in skipped.reason
    assert (
        "# loose: not scaffolded: it has no primary key"
        in (tmp_path / "pipe" / "dataplump.yaml").read_text()
    )


# --- cursor --------------------------------------------------------------------------


def test_cursor_is_a_not_null_updated_like_timestamp(tmp_path: Path, shop: str) -> None:
    scaffold(shop, tmp_path / "pipe")
    tables = read_yaml(tmp_path / "pipe" / "dataplump.yaml")["tables"]
    assert tables["orders"]["mode"] == "incremental"
    assert tables["orders"]["cursor"] == "updated_at"
    assert tables["orders"]["lag_seconds"] == 5
    assert "mode" not in tables["customers"]  # created_at is not a change cursor
    assert "cursor" not in tables["customers"]


def test_nullable_cursor_candidate_means_full_mode_and_says_why(tmp_path: Path) -> None:
    url = make_db(
        tmp_path / "c.db",
        "CREATE TABLE a (id INTEGER PRIMARY KEY, modified_at TIMESTAMP);"
        " CREATE TABLE b (id INTEGER PRIMARY KEY, last_modified DATETIME NOT NULL,"
        " updated INTEGER NOT NULL)",
        {"a": [(1, None)], "b": [(1, "2024-01-01 00:00:00", 3)]},
    )
    scaffold(url, tmp_path / "pipe")
    text = (tmp_path / "pipe" / "dataplump.yaml").read_text()
    tables = read_yaml(tmp_path / "pipe" / "dataplump.yaml")["tables"]
    assert "cursor" not in tables["a"]
    assert "`modified_at` allows NULL" in text
    assert tables["b"]["cursor"] == "last_modified"  # `updated` is no timestamp


@pytest.mark.parametrize(
    ("names", "chosen"),
    [
        (["id", "created_at", "updated_at"], "updated_at"),
        (["id", "Last Modified", "created"], "Last Modified"),
        (["id", "ModifiedDate"], "ModifiedDate"),
        (["id", "date_modified"], "date_modified"),
        (["id", "mtime"], "mtime"),
        (["last_update", "updatedAt"], "updatedAt"),
        (["id", "created_at", "shipped_at"], None),
    ],
)
def test_choose_cursor_name(names: list[str], chosen: str | None) -> None:
    assert choose_cursor_name(names) == chosen


# --- rules from the sample -----------------------------------------------------------


def test_sampled_rules_are_conservative(tmp_path: Path, shop: str) -> None:
    scaffold(shop, tmp_path / "pipe")
    orders = read_yaml(tmp_path / "pipe" / "contracts" / "orders.yaml")["columns"]
    assert orders["amount"] == {"type": "decimal(10,2)", "min": 0}
    assert orders["status"] == {"type": "string", "accepted_values": ["new", "paid"]}
    assert orders["customer_id"] == {"type": "int64", "not_null": True}  # checked as an fk
    customers = read_yaml(tmp_path / "pipe" / "contracts" / "customers.yaml")["columns"]
    assert customers["country"]["accepted_values"] == ["DK", "NO", "SE"]
    assert "accepted_values" not in customers["name"]  # every value differs


def test_no_accepted_values_from_a_partial_sample(tmp_path: Path, shop: str) -> None:
    result = scaffold(shop, tmp_path / "pipe", sample_rows=25)
    assert result.problems == []
    orders = read_yaml(tmp_path / "pipe" / "contracts" / "orders.yaml")["columns"]
    assert "accepted_values" not in orders["status"]
    assert orders["amount"]["min"] == 0
    assert (
        "a sample of 25 of its 60 rows"
        in (tmp_path / "pipe" / "contracts" / "orders.yaml").read_text()
    )


def test_negative_numbers_get_no_min(tmp_path: Path) -> None:
    url = make_db(
        tmp_path / "n.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, delta INTEGER)",
        {"t": [(1, 5), (2, -1)]},
    )
    scaffold(url, tmp_path / "pipe")
    assert read_yaml(tmp_path / "pipe" / "contracts" / "t.yaml")["columns"]["delta"] == {
        "type": "int64"
    }


def test_verify_drops_a_rule_the_sample_breaks() -> None:
    column = SourceColumn("qty", "INTEGER", pa.int64())
    key = SourceColumn("id", "INTEGER", pa.int64(), nullable=False)
    table = ReflectedTable(
        "t",
        (key, column),
        ("id",),
        "primary key",
        row_count=3,
        sample=pa.table({"id": [1, 2, 3], "qty": [1, -2, None]}),
    )
    proposal = TableProposal(
        table,
        [
            ColumnProposal("id", "INTEGER", {"type": "int64", "not_null": True, "unique": True}),
            ColumnProposal("qty", "INTEGER", {"type": "int64", "min": 0}),
        ],
        [],
        None,
        "",
    )
    dropped = verify(proposal)
    assert dropped == ["`min` on `qty` dropped: 1 sampled rows break it"]
    assert proposal.contract()["columns"]["qty"] == {"type": "int64"}
    assert verify(proposal) == []


# --- foreign keys --------------------------------------------------------------------


def test_foreign_keys_become_relationships_of_an_output_contract(tmp_path: Path, shop: str) -> None:
    result = scaffold(shop, tmp_path / "pipe")
    assert result.problems == []
    pipeline = read_yaml(tmp_path / "pipe" / "dataplump.yaml")
    assert pipeline["tables"]["orders"]["output_contract"] == "contracts/orders.output.yaml"
    assert pipeline["transform"]["references"] == {
        "customers": {"table": "customers", "refresh_seconds": 300}
    }
    output = read_yaml(tmp_path / "pipe" / "contracts" / "orders.output.yaml")
    assert output["rules"] == [
        {
            "name": "fk_customer_id",
            "relationships": {"column": "customer_id", "to": "customers", "field": "id"},
        }
    ]
    config = load_config(tmp_path / "pipe" / "dataplump.yaml", env={})
    contract = config.output_contract("orders")
    assert contract is not None
    assert contract.reference_names() == frozenset({"customers"})


def test_a_foreign_key_broken_today_is_not_proposed(tmp_path: Path) -> None:
    rows = shop_rows()
    rows["orders"][0] = (1, 999, "1.00", "new", "2024-02-01 10:00:00")  # no customer 999
    url = make_db(tmp_path / "orphan.db", SHOP, rows)
    result = scaffold(url, tmp_path / "pipe")
    assert result.problems == []
    assert not (tmp_path / "pipe" / "contracts" / "orders.output.yaml").exists()
    text = (tmp_path / "pipe" / "contracts" / "orders.yaml").read_text()
    assert "foreign key customer_id -> customers.id: not checked, 1 rows have no match" in text
    assert "references" not in read_yaml(tmp_path / "pipe" / "dataplump.yaml")["transform"]


def test_a_parent_left_out_is_no_reference(tmp_path: Path, shop: str) -> None:
    result = scaffold(shop, tmp_path / "pipe", tables=["orders"])
    assert result.problems == []
    assert [p.name for p in result.plan.proposals] == ["orders"]
    assert not (tmp_path / "pipe" / "contracts" / "orders.output.yaml").exists()


# --- odd names -----------------------------------------------------------------------

ODD = '''
CREATE TABLE "Odd-Table" (
  "Order ID" INTEGER PRIMARY KEY,
  "Customer Name" TEXT NOT NULL,
  "say ""hi""" TEXT,
  "MixedCase" INTEGER,
  "true" TEXT,
  "Total: 2024" NUMERIC(8,2),
  "#tag" TEXT,
  "{x}" TEXT
);
CREATE TABLE "order items" (id INTEGER PRIMARY KEY);
'''


def test_odd_names_are_quoted_everywhere(tmp_path: Path) -> None:
    url = make_db(
        tmp_path / "odd.db",
        ODD,
        {
            "Odd-Table": [
                (i, f"n{i}", None if i % 2 else "hi", i, "yes", f"{i}.00", "#", "{")
                for i in range(1, 4)
            ]
        },
    )
    folder = tmp_path / "pipe"
    result = scaffold(url, folder)
    assert result.problems == []
    config = load_config(folder / "dataplump.yaml", env={})
    assert list(config.tables) == ["Odd-Table"]
    assert config.tables["Odd-Table"].primary_key == ("Order ID",)
    contract = config.contract("Odd-Table")
    assert contract is not None
    assert list(contract.columns) == [
        "Order ID",
        "Customer Name",
        'say "hi"',
        "MixedCase",
        "true",
        "Total: 2024",
        "#tag",
        "{x}",
    ]
    steps = config.transform.steps_for("Odd-Table")
    assert steps[0].query == (
        'SELECT *, length("Customer Name") AS "Customer Name_length"\nFROM batch'
    )
    assert check_steps(config, "Odd-Table") == []
    (skipped,) = result.plan.skipped
    assert skipped.name == "order items"
    assert "Kafka topic names" in skipped.reason


def test_odd_names_steps_run_on_data(tmp_path: Path) -> None:
    url = make_db(
        tmp_path / "odd.db", ODD, {"Odd-Table": [(1, "ab", None, 1, "t", "1.00", "", "")]}
    )
    scaffold(url, tmp_path / "pipe")
    config = load_config(tmp_path / "pipe" / "dataplump.yaml", env={})
    from dataplump.engine.transform import TableTransform

    transform = TableTransform.from_config(config, "Odd-Table")
    contract = config.contract("Odd-Table")
    assert contract is not None
    row = {
        "Order ID": [1],
        "Customer Name": ["abc"],
        'say "hi"': [None],
        "MixedCase": [1],
        "true": ["x"],
        "Total: 2024": [None],
        "#tag": ["#"],
        "{x}": ["{"],
    }
    batch = pa.Table.from_pydict(row, schema=contract.arrow_schema())
    try:
        out = transform.apply(batch).output
    finally:
        transform.close()
    assert out.column("Customer Name_length").to_pylist() == [3]
    assert out.column('say "hi"_missing').to_pylist() == [True]


def test_yaml_and_sql_quoting() -> None:
    assert yaml_str("orders") == "orders"
    assert yaml_str("no") == '"no"'
    assert yaml_str("12") == '"12"'
    assert yaml_str("a: b") == '"a: b"'
    assert yaml_str("-x") == '"-x"'
    assert yaml_str('q"') == '"q\\""'
    assert sql_name('a "b" c') == '"a ""b"" c"'


# --- secrets -------------------------------------------------------------------------


def test_password_becomes_a_variable_reference() -> None:
    text, had = without_password("postgresql+psycopg://shop:s3cr%40t@db:5432/shop", "SHOP_DB_PW")
    assert had
    assert text == "postgresql+psycopg://shop:${SHOP_DB_PW}@db:5432/shop"
    text, had = without_password("postgresql+psycopg://shop@db/shop", "X")
    assert (text, had) == ("postgresql+psycopg://shop@db/shop", False)
    text, _ = without_password("postgresql+psycopg://a:b@db/x?application_name=${x}", "V")
    assert "${x}" not in text  # no reference the loader would try to resolve


def test_relative_sqlite_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_db(tmp_path / "rel.db", "CREATE TABLE t (id INTEGER PRIMARY KEY)", {"t": [(1,)]})
    monkeypatch.chdir(tmp_path)
    text, _ = without_password("sqlite:///rel.db", "X")
    assert text == f"sqlite:///{tmp_path / 'rel.db'}"


def test_names_of_pipeline_and_variable() -> None:
    assert default_name("sqlite:////data/My Shop.db") == "My_Shop"
    assert default_name("postgresql+psycopg://u:p@h/shop") == "shop"
    assert default_name("postgresql+psycopg://u:p@h/") == "pipeline"
    assert password_variable("my-shop") == "MY_SHOP_DB_PASSWORD"
    assert password_variable("2shop") == "DP_2SHOP_DB_PASSWORD"


# --- the command ---------------------------------------------------------------------


def test_cli_prints_what_it_wrote_and_the_next_commands(tmp_path: Path, shop: str) -> None:
    folder = tmp_path / "pipe"
    result = runner.invoke(app, ["init", str(folder), "--url", shop, "--name", "demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"wrote pipeline `demo` in {folder}" in out
    assert str(folder / "contracts" / "orders.yaml") in out
    assert "table orders: incremental by updated_at" in out
    assert f"dataplump config check -c {folder / 'dataplump.yaml'} --steps" in out
    assert f"dataplump extract -c {folder / 'dataplump.yaml'} --once" in out
    assert "export" not in out  # no password, no variable to set


def test_cli_never_overwrites_without_force(tmp_path: Path, shop: str) -> None:
    folder = tmp_path / "pipe"
    folder.mkdir()
    mine = folder / "dataplump.yaml"
    mine.write_text("# mine\n")
    result = runner.invoke(app, ["init", str(folder), "--url", shop])
    assert result.exit_code == 1
    assert "1 file would be overwritten" in result.stderr
    assert "--force" in result.stderr
    assert mine.read_text() == "# mine\n"
    assert not (folder / "contracts").exists()  # all or nothing
    forced = runner.invoke(app, ["init", str(folder), "--url", shop, "--force"])
    assert forced.exit_code == 0, forced.output
    assert mine.read_text().startswith("# dataplump.yaml")
    again = runner.invoke(app, ["init", str(folder), "--url", shop])
    assert again.exit_code == 1
    assert "5 files would be overwritten" in again.stderr


def test_cli_unknown_table_says_did_you_mean(tmp_path: Path, shop: str) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--url", shop, "--tables", "ordrs"])
    assert result.exit_code == 1
    assert "no table `ordrs` in the database; did you mean `orders`?" in result.stderr
    assert not (tmp_path / "p").exists()


def test_cli_missing_sqlite_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--url", "sqlite:///nope.db"])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_cli_bad_url_and_a_file_as_folder(tmp_path: Path, shop: str) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--url", "not a url"])
    assert result.exit_code == 1
    assert "--url is not a SQLAlchemy URL" in result.stderr
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["init", str(tmp_path / "file"), "--url", shop])
    assert result.exit_code == 1
    assert "is a file, not a folder" in result.stderr
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--url", "oracle://u:pw@h/db"])
    assert result.exit_code == 1
    assert "not `oracle`" in result.stderr


def test_scaffold_error_is_terminal() -> None:
    from dataplump.errors import TerminalError

    assert issubclass(ScaffoldError, TerminalError)


def test_help_is_complete() -> None:
    result = runner.invoke(app, ["init", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--url", "--tables", "--name", "--schema", "--force", "--password-env"):
        assert option in result.stdout
    assert "DIR" in result.stdout
