"""The PostgreSQL sink's type mapping and its rule for types that fit a stored column."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dataplump.sinks import SinkError
from dataplump.sinks.postgres import JSON_METADATA, _accepts, pg_type

MAPPING = [
    (pa.bool_(), "boolean"),
    (pa.int8(), "smallint"),
    (pa.uint8(), "smallint"),
    (pa.int16(), "smallint"),
    (pa.uint16(), "integer"),
    (pa.int32(), "integer"),
    (pa.uint32(), "bigint"),
    (pa.int64(), "bigint"),
    (pa.uint64(), "numeric(20,0)"),
    (pa.float32(), "real"),
    (pa.float64(), "double precision"),
    (pa.decimal128(12, 2), "numeric(12,2)"),
    (pa.decimal256(50, 10), "numeric(50,10)"),
    (pa.string(), "text"),
    (pa.large_string(), "text"),
    (pa.dictionary(pa.int32(), pa.string()), "text"),
    (pa.binary(), "bytea"),
    (pa.date32(), "date"),
    (pa.timestamp("us"), "timestamp without time zone"),
    (pa.timestamp("ns", "Europe/Paris"), "timestamp with time zone"),
    (pa.time64("us"), "time without time zone"),
    (pa.null(), "text"),
]


@pytest.mark.parametrize(("arrow", "expected"), MAPPING, ids=[str(a) for a, _ in MAPPING])
def test_pg_type(arrow: pa.DataType, expected: str) -> None:
    assert pg_type(pa.field("c", arrow)) == expected


def test_json_fields_become_jsonb() -> None:
    assert pg_type(pa.field("c", pa.string(), metadata=JSON_METADATA)) == "jsonb"
    assert pg_type(pa.field("c", pa.string(), metadata={"dataplump.db_type": "json"})) == "jsonb"


def test_nested_types_are_refused_with_the_column() -> None:
    with pytest.raises(SinkError, match="column `tags`"):
        pg_type(pa.field("tags", pa.list_(pa.string())))


@pytest.mark.parametrize(
    ("existing", "new", "fits"),
    [
        ("bigint", "integer", True),
        ("integer", "bigint", False),
        ("numeric(12,2)", "numeric(10,2)", True),
        ("numeric(12,2)", "numeric(12,3)", False),
        ("numeric(12,2)", "integer", True),
        ("numeric(12,2)", "bigint", False),
        ("double precision", "real", True),
        ("text", "jsonb", True),
        ("jsonb", "text", True),
        ("integer", "text", False),
        ("timestamp(3) with time zone", "timestamp with time zone", True),
        ("timestamp with time zone", "timestamp without time zone", False),
    ],
)
def test_accepts(existing: str, new: str, fits: bool) -> None:
    assert _accepts(existing, new) is fits
