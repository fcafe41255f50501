"""Build Arrow batches from the YAML rows of the contract cases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from ruamel.yaml import YAML

from dataplump.contracts import Contract, parse_type

ROOT = Path(__file__).parents[3]
CASES = ROOT / "tests" / "cases" / "contracts"

# Arrow types a case may give its batch columns, beside the contract's type words.
_ARROW = {
    "uint8": pa.uint8(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float64": pa.float64(),
    "large_string": pa.large_string(),
    "string_view": pa.string_view(),
    "dictionary<string>": pa.dictionary(pa.int32(), pa.string()),
    "null": pa.null(),
    "timestamp[ms]": pa.timestamp("ms"),
    "timestamp[s, tz=Europe/Paris]": pa.timestamp("s", tz="Europe/Paris"),
    "date64": pa.date64(),
    "large_binary": pa.large_binary(),
    "list<int64>": pa.list_(pa.int64()),
    "struct<a:int64>": pa.struct([("a", pa.int64())]),
}


def arrow_type(text: str) -> pa.DataType:
    """``decimal(15,2)``, ``timestamptz``... (contract words) or a name of ``_ARROW``."""
    return _ARROW[text] if text in _ARROW else parse_type(text).arrow()


def load_yaml(path: Path) -> Any:
    """A YAML file as plain data."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def value(raw: Any, type_: pa.DataType) -> Any:
    """A YAML value as the Python value of an Arrow type (decimals exact, times aware)."""
    if raw is None:
        return None
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    if pa.types.is_decimal(type_):
        return Decimal(str(raw))
    if pa.types.is_timestamp(type_):
        moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
        if type_.tz is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment
    if pa.types.is_date(type_):
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw))
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return str(raw).encode()
    return raw


def batch(case: dict[str, Any], contract: Contract) -> pa.Table:
    """The case's rows as an Arrow table: columns and types from ``arrow``, else the
    contract's declared columns and types."""
    declared = {name: spec.logical_type.arrow() for name, spec in contract.columns.items()}
    given = case.get("arrow")
    types = {name: arrow_type(t) for name, t in given.items()} if given else declared
    rows = case.get("rows") or []
    arrays = []
    for name, type_ in types.items():
        values = [value(row.get(name), type_) for row in rows]
        if pa.types.is_dictionary(type_):
            arrays.append(pa.array(values, type_.value_type).dictionary_encode())
        else:
            arrays.append(pa.array(values, type_))
    return pa.table(dict(zip(types, arrays, strict=True)))


def reference_tables(case: dict[str, Any]) -> dict[str, pa.Table]:
    """The case's ``references``: per name, a table of ``rows`` with ``arrow`` types."""
    tables = {}
    for name, given in (case.get("references") or {}).items():
        types = {column: arrow_type(t) for column, t in given["arrow"].items()}
        rows = given.get("rows") or []
        tables[name] = pa.table(
            {c: pa.array([value(r.get(c), t) for r in rows], t) for c, t in types.items()}
        )
    return tables
