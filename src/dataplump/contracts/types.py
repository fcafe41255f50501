"""The column types a contract declares, their Arrow and DuckDB types, and type drift.

A contract names a column's type with one of these words (case-insensitive)::

    integer  int8  int16  int32  int64      integer is int64
    decimal(p,s)                            1 <= p <= 38, 0 <= s <= p
    float  double                           float is 32-bit, double 64-bit
    string  text                            the same type
    boolean  date  timestamp  timestamptz   timestamp has no zone, timestamptz has one
    json  bytes

:func:`parse_type` turns the word into a :class:`LogicalType`, which knows its Arrow
type (:meth:`LogicalType.arrow`), its DuckDB type (:attr:`LogicalType.duckdb`) and
which incoming Arrow types it accepts without *type drift* (:meth:`LogicalType.accepts`):
a type is accepted when every value it can hold is a value of the declared type, so
``int32`` data meets ``int64`` and ``decimal(10,2)`` data meets ``decimal(15,2)``,
while ``string`` data for a ``timestamp`` column, ``int64`` data for ``int32`` or
zone-aware timestamps for a ``timestamp`` (no zone) column are drift.

    >>> t = parse_type("Decimal(12, 2)")
    >>> t.name, t.duckdb
    ('decimal(12,2)', 'DECIMAL(12,2)')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pyarrow as pa

Family = Literal[
    "integer",
    "decimal",
    "float",
    "string",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
    "json",
    "bytes",
]
"""The kind of a declared type; rules say which families they apply to."""

NUMERIC: frozenset[Family] = frozenset({"integer", "decimal", "float"})
TEMPORAL: frozenset[Family] = frozenset({"date", "timestamp", "timestamptz"})

TYPE_NAMES = (
    "integer",
    "int8",
    "int16",
    "int32",
    "int64",
    "decimal(p,s)",
    "float",
    "double",
    "string",
    "text",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
    "json",
    "bytes",
)
"""Every type word a contract accepts, as shown in errors."""

# Names other tools use, pointed at ours in "did you mean" hints.
_KNOWN_ELSEWHERE = {
    "int": "integer",
    "bigint": "int64",
    "long": "int64",
    "smallint": "int16",
    "tinyint": "int8",
    "varchar": "string",
    "str": "string",
    "char": "string",
    "uuid": "string",
    "numeric": "decimal(p,s)",
    "decimal": "decimal(p,s)",
    "number": "decimal(p,s)",
    "real": "float",
    "float32": "float",
    "float64": "double",
    "bool": "boolean",
    "datetime": "timestamp",
    "timestamp with time zone": "timestamptz",
    "blob": "bytes",
    "binary": "bytes",
    "bytea": "bytes",
    "jsonb": "json",
}
_DECIMAL = re.compile(r"(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "integer": 64}
_DUCKDB = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "json": "JSON",
    "bytes": "BLOB",
}
# Decimal digits an integer type needs, to tell whether it fits decimal(p,s).
_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}


@dataclass(frozen=True)
class LogicalType:
    """A declared column type: its canonical name and what it maps to."""

    name: str
    """Canonical spelling: ``int64``, ``decimal(12,2)``, ``string``, ``timestamptz``..."""
    family: Family
    """The kind of type, which decides the rules that apply."""
    bits: int = 0
    """Width of an integer or floating-point type."""
    precision: int = 0
    """Digits of a decimal type."""
    scale: int = 0
    """Digits after the point of a decimal type."""

    @property
    def duckdb(self) -> str:
        """The DuckDB type name, e.g. ``DECIMAL(12,2)``."""
        if self.family == "decimal":
            return f"DECIMAL({self.precision},{self.scale})"
        return _DUCKDB[self.name]

    def arrow(self) -> pa.DataType:
        """The Arrow type a column of this type has when produced by DataPlump.

        Timestamps are microseconds (``timestamptz`` in UTC), ``json`` is its text.
        """
        import pyarrow as pa

        if self.family == "integer":
            return pa.int64() if self.bits == 64 else getattr(pa, f"int{self.bits}")()
        simple: dict[str, pa.DataType] = {
            "float": pa.float32(),
            "double": pa.float64(),
            "string": pa.string(),
            "boolean": pa.bool_(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("us"),
            "timestamptz": pa.timestamp("us", tz="UTC"),
            "json": pa.string(),
            "bytes": pa.binary(),
        }
        if self.family == "decimal":
            return pa.decimal128(self.precision, self.scale)
        return simple[self.name]

    def accepts(self, actual: pa.DataType) -> bool:
        """Whether data of Arrow type ``actual`` meets this type without drift.

        An all-null column (Arrow ``null``) meets every type; dictionary-encoded and
        extension types are judged by their value and storage types.
        """
        import pyarrow as pa
        import pyarrow.types as pt

        if pt.is_null(actual):
            return True
        if pt.is_dictionary(actual):
            return self.accepts(actual.value_type)
        if isinstance(actual, pa.BaseExtensionType):
            if self.family == "json" and actual.extension_name == "arrow.json":
                return True
            return self.accepts(actual.storage_type)
        family = self.family
        if family == "integer":
            return bool(pt.is_signed_integer(actual) and actual.bit_width <= self.bits) or (
                pt.is_unsigned_integer(actual) and actual.bit_width < self.bits
            )
        if family == "decimal":
            if pt.is_decimal(actual):
                whole = actual.precision - actual.scale
                return bool(actual.scale <= self.scale and whole <= self.precision - self.scale)
            if pt.is_integer(actual):
                digits = _INT_DIGITS[actual.bit_width] + (
                    1 if pt.is_unsigned_integer(actual) else 0
                )
                return bool(digits <= self.precision - self.scale)
            return False
        if family == "float":
            exact_ints = 16 if self.bits == 32 else 32  # integers the mantissa holds exactly
            if pt.is_floating(actual):
                return bool(actual.bit_width <= self.bits)
            return bool(pt.is_integer(actual) and actual.bit_width <= exact_ints)
        if family in ("string", "json"):
            if pt.is_string(actual) or pt.is_large_string(actual) or pt.is_string_view(actual):
                return True
            return family == "json" and bool(
                pt.is_struct(actual) or pt.is_list(actual) or pt.is_large_list(actual)
            )
        if family == "boolean":
            return bool(pt.is_boolean(actual))
        if family == "date":
            return bool(pt.is_date(actual))
        if family in ("timestamp", "timestamptz"):
            return bool(pt.is_timestamp(actual)) and (actual.tz is not None) == (
                family == "timestamptz"
            )
        return bool(  # bytes
            pt.is_binary(actual)
            or pt.is_large_binary(actual)
            or pt.is_fixed_size_binary(actual)
            or pt.is_binary_view(actual)
        )


def parse_type(text: str) -> LogicalType:
    """The :class:`LogicalType` a contract's ``type:`` names; ``ValueError`` says what is wrong.

    >>> parse_type("integer").name, parse_type("text").name
    ('int64', 'string')
    >>> parse_type("bigint")
    Traceback (most recent call last):
    ...
    ValueError: unknown type `bigint`; did you mean `int64`? (types: integer, int8, ...)
    """
    word = " ".join(text.lower().split())
    if word in _INT_BITS:
        bits = _INT_BITS[word]
        return LogicalType(f"int{bits}", "integer", bits=bits)
    if word in ("float", "double"):
        return LogicalType(word, "float", bits=32 if word == "float" else 64)
    if word in ("string", "text"):
        return LogicalType("string", "string")
    if word in ("boolean", "date", "timestamp", "timestamptz", "json", "bytes"):
        return LogicalType(word, word)  # type: ignore[arg-type]  # the word is the family
    if match := _DECIMAL.fullmatch(word):
        precision, scale = int(match[1]), int(match[2])
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(
                f"invalid `{text}`: decimal(p,s) needs 1 <= p <= 38 and 0 <= s <= p,"
                " e.g. decimal(12,2)"
            )
        return LogicalType(f"decimal({precision},{scale})", "decimal", 0, precision, scale)
    if word.split("(")[0].strip() in ("decimal", "numeric") and "(" in word and ")" not in word:
        raise ValueError(
            f"`{text}` is cut at its comma: inside a flow mapping `{{...}}` put the type in"
            " quotes, `type: 'decimal(12,2)'`"
        )
    if word.split("(")[0].strip() in ("decimal", "numeric") and "(" in word:
        raise ValueError(
            f"invalid `{text}`: write decimal(p,s) with the precision and the scale,"
            " e.g. decimal(12,2)"
        )
    hint = _KNOWN_ELSEWHERE.get(word) or next(iter(get_close_matches(word, TYPE_NAMES, 1)), None)
    did_you_mean = f"; did you mean `{hint}`?" if hint else ""
    raise ValueError(f"unknown type `{text}`{did_you_mean} (types: {', '.join(TYPE_NAMES)})")
