"""The text of the files ``dataplump init`` writes: YAML with comments, a Python step.

The files are written as text, not dumped, so every section can carry the comment that
explains it. Every name that comes from the database goes through :func:`yaml_str`
(YAML), :func:`sql_name` (DuckDB SQL) or :func:`repr` (Python), so a column called
``Customer "Name"`` or ``Total: 2024`` is written as exactly that name.

    >>> yaml_str("orders"), yaml_str("Total: 2024"), yaml_str("true")
    ('orders', '"Total: 2024"', '"true"')
    >>> sql_name('a"b')
    '"a""b"'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import make_url

from dataplump.scaffold.propose import LAG_SECONDS, TableProposal

__all__ = [
    "Example",
    "contract_file",
    "output_contract_file",
    "pipeline_file",
    "sql_name",
    "step_file",
    "without_password",
    "yaml_str",
    "yaml_value",
]

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def yaml_str(text: str) -> str:
    """``text`` as a YAML scalar: plain when that cannot be misread, else double-quoted
    (a JSON string is a valid YAML double-quoted scalar)."""
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)


def yaml_value(value: Any) -> str:
    """A YAML flow value for contract rule arguments (text, numbers, booleans, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, str):
        return yaml_str(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{yaml_str(k)}: {yaml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def sql_name(name: str) -> str:
    """``name`` as a quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


_TOKEN = "DATAPLUMPPASSWORDPLACEHOLDER"  # noqa: S105 - a placeholder, replaced


def without_password(url: str, variable: str) -> tuple[str, bool]:
    """``url`` as pipeline-file text with its password replaced by ``${variable}``, and
    whether it had one. A ``${`` already in the URL is escaped as ``$${``; a relative
    SQLite path is made absolute (SQLite resolves it against the working folder)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        from pathlib import Path

        parsed = parsed.set(database=str(Path(parsed.database or "").resolve()))
    had_password = parsed.password is not None and parsed.password != ""
    if had_password:
        parsed = parsed.set(password=_TOKEN)
    text = parsed.render_as_string(hide_password=False).replace("${", "$${")
    return text.replace(_TOKEN, "${" + variable + "}"), had_password


def _comment(lines: Sequence[str], indent: str = "") -> str:
    return "".join(f"{indent}# {line}".rstrip() + "\n" for line in lines)


def contract_file(proposal: TableProposal, *, pipeline: str) -> str:
    """The contract file of one table, a comment beside each column."""
    table = proposal.table
    rows = (
        f"all {table.sample.num_rows:,} rows"
        if table.sampled_all
        else f"a sample of {table.sample.num_rows:,} of its {table.row_count:,} rows"
    )
    head = [
        f"Data contract of table `{table.name}`, proposed by `dataplump init` from the",
        f"database's catalog and {rows}; checked on them. It is yours to edit.",
        "",
        "Extraction checks every row against it: rows that meet it go on to",
        f"{pipeline}.{table.name}.active, the others to {pipeline}.{table.name}.dlq with every",
        "rule they break. Each column: its type (as DataPlump reads it) and its rules",
        "(not_null, unique, min, max, accepted_values, pattern, ...). See docs/contracts.md.",
    ]
    if proposal.notes:
        head += ["", *proposal.notes]
    out = _comment(head)
    out += 'version: "1"                     # your version of the contract; quote it\n'
    out += f"description: {yaml_str(f'Rows of {table.name} as the source database holds them.')}\n"
    out += "on_unknown_column: pass          # a new column in the table: let it through\n"
    out += "on_missing_column: reject_row    # a declared column the table lost\n"
    out += "on_type_drift: reject_row        # a column whose type changed\n"
    out += "columns:\n"
    for column in proposal.columns:
        notes = [column.db_type, *column.notes]
        if column.spec is None:
            out += f"  # {yaml_str(column.name)}: {'; '.join(notes)}\n"
            continue
        line = f"  {yaml_str(column.name)}: {yaml_value(column.spec)}"
        out += f"{line:<48} # {'; '.join(notes)}\n"
    if proposal.rules:
        out += "rules:\n"
        for rule in proposal.rules:
            out += f"  - {yaml_value(rule)}\n"
    return out


def output_contract_file(proposal: TableProposal, output: Mapping[str, Any]) -> str:
    """The output contract of one table: its foreign keys as ``relationships`` rules."""
    head = [
        f"Output contract of table `{proposal.name}`, proposed by `dataplump init` from its",
        "foreign keys (no row breaks them today).",
        "",
        "The transform stage checks every transformed row against it before the row is",
        "loaded: a row whose key is not in the reference table (the parent, read from the",
        "source database as `transform.references` says) goes to the failed topic with its",
        "reasons. See docs/contracts.md#relationships-referential-integrity.",
    ]
    out = _comment(head) + 'version: "1"\ncolumns:\n'
    for name, spec in output["columns"].items():
        out += f"  {yaml_str(name)}: {yaml_value(spec)}\n"
    out += "rules:\n"
    for rule in output["rules"]:
        out += f"  - {yaml_value(rule)}\n"
    return out


@dataclass(frozen=True)
class Example:
    """The example steps of one table: a SQL step and a pandas step."""

    table: str
    sql: str
    """The query, with quoted names."""
    sql_column: str
    """The column the SQL step adds."""
    pandas: str
    """The step as written: ``steps/<file>.py:<function>``."""
    pandas_column: str
    """The column the pandas step adds."""
    step_text: str
    """The Python file's text."""


def step_file(table: str, function: str, source: str, added: str) -> str:
    """A pandas step adding ``added``: whether ``source`` is null."""
    return f'''"""Example pandas step for table `{table}`, written by `dataplump init`.

The transform stage calls `{function}` with each batch of `{table}` as a pandas
DataFrame (columns are pandas.ArrowDtype: exact decimals and timestamps) and carries on
with the DataFrame it returns. Keep the index: it is each row's lineage. Edit it, or
remove the step from dataplump.yaml. See docs/transform.md#pandas.
"""

from __future__ import annotations

import pandas as pd


def {function}(df: pd.DataFrame) -> pd.DataFrame:
    """Add the column {added!r}: whether {source!r} is missing."""
    return df.assign(**{{{added!r}: df[{source!r}].isna()}})
'''


def _block(text: str, indent: str) -> str:
    return "|-\n" + "".join(f"{indent}{line}\n" for line in text.splitlines())


def pipeline_file(
    *,
    name: str,
    url_text: str,
    password_variable: str | None,
    masked_url: str,
    schema: str | None,
    proposals: Sequence[TableProposal],
    contract_paths: Mapping[str, str],
    output_paths: Mapping[str, str],
    references: Mapping[str, str],
    example: Example | None,
    skipped: Sequence[tuple[str, str]],
) -> str:
    """The pipeline file, every section explained."""
    out = _comment(
        [
            f"dataplump.yaml — pipeline `{name}`, written by `dataplump init` from {masked_url}.",
            "",
            "Check it with `dataplump config check -c dataplump.yaml --steps`; docs/config.md",
            "explains every key. Any string value may use ${VAR} or ${VAR:-default} (write",
            "$${ for a literal `${`), and any key can be overridden from the environment:",
            "DATAPLUMP__SECTION__KEY=value, e.g. DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS=host:9092.",
            "Relative paths are relative to this file's folder.",
        ]
    )
    out += "\npipeline:\n"
    out += "  # Part of every Kafka topic name: <name>.<table>.active, <name>.<table>.dlq, ...\n"
    out += f"  name: {yaml_str(name)}\n"
    out += "\nsource:\n"
    out += "  # The database rows are extracted from (a SQLAlchemy URL).\n"
    if password_variable:
        out += (
            f"  # The password is not kept here: set {password_variable} in the environment"
            " of\n  # every dataplump command.\n"
        )
    out += f"  url: {yaml_str(url_text)}\n"
    if schema:
        out += f"  schema: {yaml_str(schema)}               # the schema the tables live in\n"
    else:
        out += "  # schema: public                  # the connection's default schema when unset\n"
    out += "\n" + _comment(
        [
            "One entry per source table: its key (the Kafka record key), how it is read",
            "(`full`: the whole table each run; `incremental`: rows whose `cursor` grew since",
            "the last run) and its data contract (contracts/<table>.yaml).",
        ]
    )
    out += "tables:\n"
    for proposal in proposals:
        table = proposal.table
        out += f"  {yaml_str(table.name)}:\n"
        key = table.primary_key
        key_text = yaml_str(key[0]) if len(key) == 1 else yaml_value(list(key))
        lines = [(f"primary_key: {key_text}", f"the table's {table.key_source}")]
        if proposal.cursor is None:
            lines.append(("# mode: full", proposal.cursor_note))
        else:
            lines += [
                ("mode: incremental", "read only rows whose cursor grew"),
                (f"cursor: {yaml_str(proposal.cursor)}", proposal.cursor_note),
                (
                    f"lag_seconds: {LAG_SECONDS}",
                    f"stop {LAG_SECONDS} s before now: late-committing rows are not missed",
                ),
            ]
        lines.append((f"contract: {yaml_str(contract_paths[table.name])}", ""))
        if table.name in output_paths:
            lines.append(
                (
                    f"output_contract: {yaml_str(output_paths[table.name])}",
                    "foreign keys, checked after the transform",
                )
            )
        for text, comment in lines:
            out += f"    {text:<32} # {comment}\n" if comment else f"    {text}\n"
    for table_name, reason in skipped:
        out += f"  # {yaml_str(table_name)}: not scaffolded: {reason}\n"
    out += """
kafka:
  # Unset or empty: DataPlump runs its own broker on 127.0.0.1 (`dataplump kafka up`).
  # Set (here, or with KAFKA_BOOTSTRAP_SERVERS): that cluster is used instead.
  bootstrap_servers: ${KAFKA_BOOTSTRAP_SERVERS:-}
  managed:
    port: 9092
    data_dir: .dataplump/kafka
  topic:
    partitions: 1              # consumers of one stage that can work in parallel
    replication_factor: 1
  # security_protocol: SASL_SSL  # PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL

transform:
  engine: duckdb               # or spark
"""
    if references:
        out += (
            "  # Lookup tables SQL steps can join and output contracts check foreign keys\n"
            "  # against, read from the source database (reloaded every 5 minutes).\n"
            "  references:\n"
        )
        for ref, table_name in references.items():
            out += f"    {ref}: {{table: {yaml_str(table_name)}, refresh_seconds: 300}}\n"
    else:
        out += "  # references:                # lookup tables SQL steps can join\n"
        out += "  #   customers: {table: customers, refresh_seconds: 300}\n"
    out += (
        "  # Per table, an ordered list of steps, each a mapping with one key, the step's kind:\n"
        "  # trim, lowercase, cast, fill_null, dedupe, rename, drop, sql, pandas, polars...\n"
        "  # (docs/transform.md#steps). A table without steps is passed on as it is.\n"
    )
    if example is None:
        out += "  steps: {}\n"
    else:
        out += "  steps:\n"
        out += f"    {yaml_str(example.table)}:\n"
        out += (
            f"      # DuckDB SQL over the relation `batch`; `SELECT *` keeps each row's lineage.\n"
            f"      # This one adds the column {json.dumps(example.sql_column)}.\n"
        )
        out += f"      - sql: {_block(example.sql, '          ')}"
        out += (
            f"      # A Python function DataFrame -> DataFrame ({example.pandas.split(':')[0]});"
            f"\n      # this one adds the column {json.dumps(example.pandas_column)}.\n"
        )
        out += f"      - pandas: {yaml_str(example.pandas)}\n"
    out += """
# Where curated rows are committed, by name; a table goes to every sink unless it lists
# its own (`tables.<t>.sinks`). The ops tables (_dlq, _failed, _alerts, _runs) go to the
# first sink. Query it with `dataplump lake` or any Delta Lake reader.
sinks:
  lake:
    kind: delta                # delta, parquet or postgres
    path: lake                 # DIR/lake, one Delta table per source table
    mode: merge                # upsert by primary key: the newest version of a row wins
  # warehouse:
  #   kind: postgres
  #   url: postgresql+psycopg://dw:${DW_PASSWORD}@warehouse:5432/dw
  #   schema: curated

# Who hears about rejected rows: alerts go to the log; add slack, webhook or email
# channels (docs/notify.md).
notify:
  channels:
    - kind: log
    # - kind: slack
    #   webhook_url: ${SLACK_WEBHOOK_URL}
"""
    return out
