"""Propose a table's settings and data contract from its reflected columns and a sample.

What is proposed, and why it is safe to start with:

- each column's **type** from the Arrow type extraction carries it as (so no type drift);
  a column no contract type can declare (``time``, decimals over 38 digits) is left out
  of the contract, which lets undeclared columns pass;
- ``not_null`` for NOT NULL columns, ``not_null`` + ``unique`` for the key (a key of
  several columns: a table rule ``unique: [a, b]``);
- ``incremental`` mode with a NOT NULL ``updated_at``/``modified``-like timestamp as the
  cursor, else ``full`` mode;
- from the sample, conservatively: ``min: 0`` for numbers never negative, and
  ``accepted_values`` for text with a few repeated values when the sample is the whole
  table;
- foreign keys to another scaffolded table as ``relationships`` rules of an output
  contract (checked by the transform stage against the parent read as a reference),
  when no row breaks them today.

Then the contract is checked on the sample (:func:`verify`): a rule any sampled row
breaks is dropped and said so, so the first run sends no current row to the DLQ.

    >>> import pyarrow as pa
    >>> contract_type(pa.decimal128(12, 2)), contract_type(pa.timestamp("us", tz="UTC"))
    ('decimal(12,2)', 'timestamptz')
    >>> choose_cursor_name(["id", "created_at", "last_modified"])
    'last_modified'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataplump.contracts import Contract, ContractError
from dataplump.scaffold.reflect import ReflectedTable
from dataplump.sources import SourceColumn

__all__ = [
    "ACCEPTED_VALUES_MAX",
    "LAG_SECONDS",
    "ColumnProposal",
    "TableProposal",
    "choose_cursor_name",
    "contract_type",
    "propose",
    "reference_name",
    "verify",
]

LAG_SECONDS = 5
"""``lag_seconds`` of an incremental table: rows whose transaction commits late are read."""
ACCEPTED_VALUES_MAX = 10
"""At most this many distinct values make an ``accepted_values`` rule."""
_ACCEPTED_VALUES_MIN_ROWS = 20
_ACCEPTED_VALUE_LENGTH = 40

# Cursor names, best first; matched against the name lowered, non-alphanumerics as `_`.
_CURSOR_NAMES = (
    re.compile(r"^(updated|modified|changed)(_?(at|on|time|ts|timestamp|date))?$"),
    re.compile(r"^(last_?)?(updated|modified|changed|update|modify|change)(_?(at|on|time|ts))?$"),
    re.compile(r"^(date|time|ts)_?(updated|modified|changed|last_?(update|modified|changed))$"),
    re.compile(r"(updated|modified|changed|last_?update|mtime|update_?time)"),
)


def contract_type(arrow: pa.DataType | None) -> str | None:
    """The contract type that accepts ``arrow`` exactly; ``None`` when there is none."""
    if arrow is None:
        return None
    if pa.types.is_signed_integer(arrow):
        return f"int{arrow.bit_width}"
    if pa.types.is_unsigned_integer(arrow):  # unsigned fits a strictly wider signed type
        return {8: "int16", 16: "int32", 32: "int64"}.get(arrow.bit_width, "decimal(20,0)")
    if pa.types.is_decimal(arrow):
        return f"decimal({arrow.precision},{arrow.scale})" if arrow.precision <= 38 else None
    if pa.types.is_floating(arrow):
        return {32: "float", 64: "double"}.get(arrow.bit_width)
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "string"
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_date(arrow):
        return "date"
    if pa.types.is_timestamp(arrow):
        return "timestamptz" if arrow.tz is not None else "timestamp"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "bytes"
    return None


def _plain_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def choose_cursor_name(names: Sequence[str]) -> str | None:
    """The best ``updated_at``/``modified``-like name among ``names``, else ``None``."""
    for pattern in _CURSOR_NAMES:
        for name in names:
            if pattern.search(_plain_name(name)):
                return name
    return None


def reference_name(table: str, taken: set[str]) -> str:
    """A name for ``table`` as a transform reference (a SQL name, not `batch`), unique
    among ``taken``, which it joins."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", table)[:60] or "ref"
    if base[0].isdigit():
        base = "_" + base
    if base.lower() == "batch":
        base += "_ref"
    name, n = base, 2
    while name.lower() in {t.lower() for t in taken}:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


@dataclass
class ColumnProposal:
    """A column of the proposed contract; ``spec`` is what the contract file says."""

    name: str
    db_type: str
    spec: dict[str, Any] | None
    """``{"type": ..., rules...}``; None: the column is left out of the contract."""
    notes: list[str] = field(default_factory=list)
    """Comments written beside the column (where a rule comes from, why one was dropped)."""


@dataclass
class TableProposal:
    """Everything ``init`` writes about one table."""

    table: ReflectedTable
    columns: list[ColumnProposal]
    rules: list[dict[str, Any]]
    """Table rules of the contract (a key of several columns)."""
    cursor: str | None
    cursor_note: str
    """Why this mode: the cursor chosen, or why none was."""
    relationships: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    """(``relationships`` table rule, its column's contract type) of the output contract."""
    notes: list[str] = field(default_factory=list)
    """Lines for the contract file's header (rules dropped, fks left out)."""

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def mode(self) -> str:
        return "full" if self.cursor is None else "incremental"

    def contract(self) -> dict[str, Any]:
        """The contract as data (what the file holds, without its comments)."""
        columns = {c.name: dict(c.spec) for c in self.columns if c.spec is not None}
        contract: dict[str, Any] = {"version": "1", "columns": columns}
        if self.rules:
            contract["rules"] = [dict(r) for r in self.rules]
        return contract

    def output_contract(self) -> dict[str, Any] | None:
        """The output contract (the foreign keys as ``relationships``), or None."""
        if not self.relationships:
            return None
        columns = {rule["relationships"]["column"]: {"type": t} for rule, t in self.relationships}
        return {"version": "1", "columns": columns, "rules": [r for r, _ in self.relationships]}


def _cursor(table: ReflectedTable) -> tuple[str | None, str]:
    stamps = [c for c in table.columns if c.cursor_kind in ("timestamp", "timestamptz")]
    usable = [c.name for c in stamps if not c.nullable and c.name not in table.primary_key]
    chosen = choose_cursor_name(usable)
    if chosen is not None:
        return chosen, f"`{chosen}`, a NOT NULL timestamp, grows with every change"
    nullable = choose_cursor_name([c.name for c in stamps if c.nullable])
    if nullable is not None:
        return None, (
            f"`{nullable}` allows NULL (rows where it is NULL would never be read"
            " incrementally): declare it NOT NULL, then use it as the cursor"
        )
    return None, "no NOT NULL updated_at/modified-like timestamp column to use as a cursor"


def _numeric(arrow: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(arrow) or pa.types.is_decimal(arrow) or pa.types.is_floating(arrow)
    )


def _sample_rules(column: SourceColumn, values: pa.ChunkedArray, whole: bool) -> dict[str, Any]:
    """Rules the sampled ``values`` suggest (before :func:`verify` checks them)."""
    arrow = column.arrow_type
    present = values.drop_null()
    if arrow is None or len(present) == 0:
        return {}
    if _numeric(arrow) and not pa.types.is_floating(arrow):
        if pc.min(present).as_py() >= 0:
            return {"min": 0}
        return {}
    if pa.types.is_string(arrow) and whole and len(present) >= _ACCEPTED_VALUES_MIN_ROWS:
        counts = pc.value_counts(present)
        found = counts.field("values").to_pylist()
        times = counts.field("counts").to_pylist()
        if (
            len(found) <= ACCEPTED_VALUES_MAX
            and min(times) >= 2
            and all(0 < len(v) <= _ACCEPTED_VALUE_LENGTH and v == v.strip() for v in found)
        ):
            return {"accepted_values": sorted(found)}
    return {}


def propose(
    table: ReflectedTable,
    scaffolded: Sequence[ReflectedTable],
    references: Mapping[str, str] | None = None,
) -> TableProposal:
    """The proposal for ``table``; ``scaffolded`` are the tables written with it (the
    parents its foreign keys may name), ``references`` the reference name of each
    parent table (default: the table's name)."""
    key = table.primary_key
    whole = table.sampled_all
    references_of = {fk.column for fk in table.foreign_keys}  # checked as relationships
    columns: list[ColumnProposal] = []
    lowered: dict[str, str] = {}
    for column in table.columns:
        declared = contract_type(column.arrow_type)
        first = lowered.setdefault(column.name.lower(), column.name)
        if declared is None or first != column.name:
            why = (
                "no contract type holds it"
                if declared is None
                else f"its name differs from `{first}` only in case, which contract rules"
                " (SQL) cannot tell apart"
            )
            note = f"not declared: {why}"
            columns.append(ColumnProposal(column.name, column.db_type, None, [note]))
            continue
        spec: dict[str, Any] = {"type": declared}
        notes = []
        if column.name in key or not column.nullable:
            spec["not_null"] = True
            notes.append("key" if column.name in key else "NOT NULL")
        if len(key) == 1 and column.name in key:
            spec["unique"] = True
        if column.name not in key and column.name not in references_of:
            suggested = _sample_rules(column, table.sample.column(column.name), whole)
            if suggested:
                notes.append(f"{', '.join(suggested)}: from {_rows(table)}")
            spec.update(suggested)
        columns.append(ColumnProposal(column.name, column.db_type, spec, notes))
    rules: list[dict[str, Any]] = []
    if len(key) > 1:
        rules.append({"name": "unique_key", "unique": list(key)})
    cursor, cursor_note = _cursor(table)
    proposal = TableProposal(table, columns, rules, cursor, cursor_note)
    _relationships(proposal, scaffolded, references or {})
    return proposal


def _rows(table: ReflectedTable) -> str:
    sampled = table.sample.num_rows
    if table.sampled_all:
        return f"all {sampled:,} rows"
    return f"a sample of {sampled:,} of {table.row_count:,} rows"


def _relationships(
    proposal: TableProposal, scaffolded: Sequence[ReflectedTable], references: Mapping[str, str]
) -> None:
    by_name = {t.name: t for t in scaffolded}
    types = {c.name: c.spec["type"] for c in proposal.columns if c.spec is not None}
    for fk in proposal.table.foreign_keys:
        parent = by_name.get(fk.parent)
        where = f"foreign key {fk.column} -> {fk.parent}.{fk.field}"
        if parent is None:
            proposal.notes.append(f"{where}: not checked ({fk.parent} is not scaffolded)")
        elif fk.column not in types:
            proposal.notes.append(f"{where}: not checked (the column has no contract type)")
        elif fk.orphans:
            proposal.notes.append(
                f"{where}: not checked, {fk.orphans:,} rows have no match in {fk.parent} today"
            )
        else:
            to = references.get(fk.parent, fk.parent)
            rule = {
                "name": f"fk_{fk.column}",  # two rules of one kind need names
                "relationships": {"column": fk.column, "to": to, "field": fk.field},
            }
            proposal.relationships.append((rule, types[fk.column]))


def verify(proposal: TableProposal) -> list[str]:
    """Check the contract on the sample and drop every rule a sampled row breaks; return
    what was dropped, one line each (also noted in the contract file)."""
    dropped: list[str] = []
    sample = proposal.table.sample
    for _ in range(3):  # dropping a rule cannot make another one fail; bounded anyway
        try:
            contract = Contract.from_config(proposal.name, proposal.contract())
        except ContractError as exc:  # a proposal the contract loader refuses is a bug
            raise AssertionError(f"proposed contract of `{proposal.name}`: {exc}") from None
        result = contract.check(sample)
        if not result.violations:
            break
        for violation in result.violations:
            line = (
                f"`{violation.rule}` on `{violation.column}` dropped: {violation.rows:,}"
                f" sampled rows break it"
            )
            dropped.append(line)
            proposal.notes.append(line)
            _drop(proposal, violation.rule, violation.column)
    return dropped


def _drop(proposal: TableProposal, rule: str, column: str | None) -> None:
    for candidate in proposal.columns:
        if candidate.name == column and candidate.spec is not None and rule in candidate.spec:
            del candidate.spec[rule]
            candidate.notes.append(f"{rule} dropped: sampled rows break it")
            return
    proposal.rules = [r for r in proposal.rules if r.get("name") != rule]
