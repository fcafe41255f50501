"""Rows on the wire: one Kafka record per source row, encoded many rows per call.

A record's **value** is the row as a JSON object, its **key** the JSON object of the
primary key columns (``{"id":42}``, ``{"order_id":7,"line":2}``; the shape Debezium
uses), both UTF-8. Encoding never loses information:

=====================  ==============================================================
Arrow type             JSON
=====================  ==============================================================
integers               number (all 64 bits; decoders must not go through float)
decimal128/256         string with the declared scale: ``"12.30"``, ``"-0.100"``
float16/32/64          number; in a batch holding NaN or ±Infinity, that column is
                       written as strings (``"NaN"``, ``"Infinity"``, ``"0.5"``)
boolean                ``true`` / ``false``
string, large_string   string (JSON-in-a-string for JSON source columns)
binary                 base64 string
date32/64              ``"2024-05-01"``
time                   ``"10:01:02.000005"``
timestamp without tz   ``"2024-05-01T10:00:00.000500"`` (digits of the column's unit)
timestamp with tz      ``"2024-05-01T10:00:00.000500+00:00"`` (offset of the column's zone)
list, struct           array, object
null                   ``null``
=====================  ==============================================================

:func:`decode_rows` reverses it given the Arrow schema, so a table that went through
Kafka comes back with the same types and values.

Lineage travels in headers (see :func:`lineage_headers`): ``dp.source``, ``dp.pk``,
``dp.extracted_at``, ``dp.run``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from dataplump.errors import TerminalError

HEADER_SOURCE = "dp.source"
HEADER_PK = "dp.pk"
HEADER_EXTRACTED_AT = "dp.extracted_at"
HEADER_RUN = "dp.run"
# Why a record was rejected (dead-letter topics and the failed store), in the spirit of
# Kafka Connect's errors.deadletterqueue.context.headers.
HEADER_ERROR_STAGE = "dp.error.stage"
HEADER_ERROR_RULES = "dp.error.rules"
HEADER_ERROR_MESSAGE = "dp.error.message"
HEADER_ERROR_CONTRACT = "dp.error.contract"
HEADER_ERROR_REASONS = "dp.error.reasons"


class RecordDecodeError(TerminalError):
    """Kafka record values that do not decode to the expected schema."""


def _wire_columns(frame: pl.DataFrame) -> list[pl.Expr]:
    """Expressions turning each column into its lossless JSON-ready form."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Binary:
            exprs.append(col.bin.encode("base64"))
        elif isinstance(dtype, pl.Datetime):
            digits = {"ms": 3, "us": 6, "ns": 9}[dtype.time_unit or "us"]
            offset = "%:z" if dtype.time_zone else ""
            exprs.append(col.dt.to_string(f"%Y-%m-%dT%H:%M:%S%.{digits}f{offset}"))
        elif dtype.is_float() and not frame[name].is_finite().fill_null(True).all():
            exprs.append(col.cast(pl.String))  # NaN, inf and -inf as "NaN", "inf", "-inf"
        else:
            exprs.append(col)
    return exprs


def _json_lines(frame: pl.DataFrame) -> list[bytes]:
    buffer = io.BytesIO()
    frame.select(_wire_columns(frame)).write_ndjson(buffer)
    lines = buffer.getvalue().split(b"\n")
    return lines[:-1] if lines and not lines[-1] else lines


def encode_rows(batch: pa.Table | pa.RecordBatch) -> list[bytes]:
    """One JSON object (UTF-8 bytes) per row, in row order."""
    if batch.num_rows == 0:
        return []
    return _json_lines(_frame(batch))


def encode_keys(batch: pa.Table | pa.RecordBatch, primary_key: Sequence[str]) -> list[bytes]:
    """One JSON object of the primary key columns per row: the Kafka record key."""
    if batch.num_rows == 0:
        return []
    return _json_lines(_frame(batch.select(list(primary_key))))


def _frame(batch: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def decode_rows(values: Sequence[bytes], schema: pa.Schema) -> pa.Table:
    """The rows of ``values`` (JSON objects) as an Arrow table of ``schema``.

    Raises :class:`RecordDecodeError` naming the first problem when a value is not a
    JSON object of that schema; callers that must keep going decode one record at a
    time to find the bad ones (they are rare) and send them to the dead-letter topic.
    """
    if not values:
        return schema.empty_table()
    wire = pa.schema([_wire_field(field) for field in schema])
    wire_frame = pl.from_arrow(wire.empty_table())
    assert isinstance(wire_frame, pl.DataFrame)
    lines = b"\n".join(values)
    if lines.count(b"\n") != len(values) - 1:
        # A value holding a line break would shift every row after it onto the wrong
        # record (and an empty one, skipped, would hide the shift from the count below).
        raise RecordDecodeError(
            "record values do not match the schema: a value holds a line break; a value"
            " must be one JSON object on one line"
        )
    try:
        frame = pl.read_ndjson(
            io.BytesIO(lines),
            schema=wire_frame.schema,
            ignore_errors=False,
        )
        if frame.height != len(values):  # an empty value: no line, and the rows shift
            raise RecordDecodeError(
                f"record values do not match the schema: {len(values)} record(s) read as"
                f" {frame.height} JSON line(s); a value must be one JSON object on one line"
            )
        table = frame.to_arrow()
        decoded = pa.table(
            [_from_wire(table.column(f.name), f.type) for f in schema], schema=schema
        )
    except (
        pl.exceptions.PolarsError,
        pl.exceptions.PanicException,
        pa.ArrowException,
        ValueError,
    ) as exc:
        raise RecordDecodeError(f"record values do not match the schema: {exc}") from None
    for field in schema:
        if not field.nullable and decoded.column(field.name).null_count:
            # Arrow does not check nullability when a table is built: a null primary key
            # would only fail later, in whichever step casts it.
            raise RecordDecodeError(
                f"record values do not match the schema: column {field.name!r} is null or"
                " missing, and the schema requires a value"
            )
    return decoded


def _wire_field(field: pa.Field) -> pa.Field:
    """The type a column is read as from JSON, before Arrow casts it to ``field.type``.

    Integers are read as 64-bit and booleans and nested types as they are; every
    other type travels as a string (see the module table) and is parsed by the cast.
    """
    kind = field.type
    if pa.types.is_unsigned_integer(kind):
        return pa.field(field.name, pa.uint64())
    if pa.types.is_integer(kind):
        return pa.field(field.name, pa.int64())
    if pa.types.is_boolean(kind) or pa.types.is_nested(kind):
        return field
    return pa.field(field.name, pa.large_string())


def _from_wire(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    """Turn a column read from JSON back into ``kind`` (strings parse with Arrow's cast)."""
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _polars(column, pl.col("c").str.decode("base64")).cast(kind)
    if pa.types.is_time(kind):
        return _polars(column, pl.col("c").str.to_time("%H:%M:%S%.f")).cast(kind)
    return column.cast(kind)


def _polars(column: pa.ChunkedArray, expr: pl.Expr) -> pa.ChunkedArray:
    frame = pl.from_arrow(pa.table({"c": column}))
    assert isinstance(frame, pl.DataFrame)
    return frame.select(expr).to_arrow().column(0)


RecordHeaders = Sequence[tuple[str, bytes | None]] | None
"""One record's headers as confluent-kafka's ``Message.headers()`` returns them."""

_HEADER_LIST = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))


def header_columns(
    headers: Sequence[RecordHeaders], names: Sequence[str]
) -> dict[str, pa.BinaryArray]:
    """Per header name, its value in each record (null where the record lacks it or its
    value is null; the last one where a record repeats it), as one Arrow array.

    The headers of all records become one Arrow list array in one call, and each name is
    picked with Arrow compute: no Python loop per record.

    >>> header_columns([[("dp.run", b"r1")], None], ["dp.run", "dp.pk"])["dp.run"].to_pylist()
    [b'r1', None]
    """
    lists = pa.array(headers, _HEADER_LIST)  # None (no headers) becomes a null list
    pairs = lists.flatten()
    owner = pc.list_parent_indices(lists).to_numpy()
    keys, values = pairs.field("key"), pairs.field("value")
    picked: dict[str, pa.BinaryArray] = {}
    for name in names:
        hit = pc.fill_null(pc.equal(keys, name), False)
        rows = owner[hit.to_numpy(zero_copy_only=False)]
        if len(rows) == len(headers) and (rows[1:] > rows[:-1]).all():
            picked[name] = values.filter(hit)  # once in every record: the usual case
            continue
        where = np.full(len(headers), -1, np.int64)
        where[rows] = np.arange(len(rows))  # a repeated key: the last assignment wins
        picked[name] = values.filter(hit).take(pa.array(where, mask=where < 0))
    return picked


KEY_SAMPLE_CHARS = 200
"""Characters of a key an alert quotes at most."""


def key_values(key: bytes) -> object:
    """A record key as people read it: the value of a one-column key, else the tuple.

    A key that is not a JSON object (a record DataPlump did not write) is its text, and
    a long one is cut: alerts quote keys, and must never fail on one.
    """
    try:
        parsed = orjson.loads(key)
    except orjson.JSONDecodeError:
        parsed = key.decode("utf-8", errors="replace")
    if isinstance(parsed, dict):
        values = tuple(parsed.values())
        parsed = values[0] if len(values) == 1 else values
    if len(key) > KEY_SAMPLE_CHARS:
        return f"{key[:KEY_SAMPLE_CHARS].decode('utf-8', errors='replace')}... ({len(key)} bytes)"
    return parsed


def rule_key(reason: Mapping[str, Any]) -> str:
    """How a broken rule is named in headers and alert counts: ``rule(column)``."""
    column = reason.get("column")
    return f"{reason['rule']}({column})" if column else str(reason["rule"])


def lineage_headers(
    source: str, key: bytes, extracted_at: str, run_id: str
) -> list[tuple[str, bytes]]:
    """The lineage headers every record carries (design: "Data on the wire")."""
    return [
        (HEADER_SOURCE, source.encode()),
        (HEADER_PK, key),
        (HEADER_EXTRACTED_AT, extracted_at.encode()),
        (HEADER_RUN, run_id.encode()),
    ]
