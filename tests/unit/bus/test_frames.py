"""Arrow IPC frames: many rows per Kafka record, within the record limit, nothing lost."""

from __future__ import annotations

import datetime as dt
import decimal
import zlib

import pyarrow as pa
import pytest

from dataplump.bus.frames import decode_frame, encode_frame, encode_frames, partitions_of
from dataplump.bus.records import RecordDecodeError


def _table(rows: int, text: int = 20) -> pa.Table:
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("price", pa.decimal128(15, 2)),
            pa.field("note", pa.string()),
            pa.field("at", pa.timestamp("us", tz="UTC")),
        ]
    )
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    return pa.table(
        {
            "id": list(range(rows)),
            "price": [
                decimal.Decimal(f"{i}.{i % 100:02d}") if i % 7 else None for i in range(rows)
            ],
            "note": [f"{i:0{text}d}" for i in range(rows)],
            "at": [start + dt.timedelta(microseconds=i) for i in range(rows)],
        },
        schema=schema,
    )


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_a_frame_gives_back_the_same_rows_and_types(compression: str | None) -> None:
    table = _table(1_000)
    back = decode_frame(encode_frame(table, compression), table.schema)
    assert back.equals(table)
    assert back.schema.field("id").nullable is False


def test_frames_stay_within_the_limit_and_keep_every_row_in_order() -> None:
    table = _table(5_000)
    whole = len(encode_frame(table))
    limit = whole // 5
    frames, too_large = encode_frames(table, limit)
    assert too_large == []
    assert len(frames) > 5
    assert all(len(frame.value) <= limit for frame in frames)
    assert [f.start for f in frames] == sorted(f.start for f in frames)
    assert sum(f.rows for f in frames) == table.num_rows
    back = pa.concat_tables(decode_frame(f.value, table.schema) for f in frames)
    assert back.equals(table)


def test_a_table_that_fits_is_one_frame() -> None:
    table = _table(100)
    frames, too_large = encode_frames(table, 1 << 20)
    assert (len(frames), too_large) == (1, [])
    assert (frames[0].start, frames[0].rows) == (0, 100)


def test_rows_too_large_even_alone_are_named_not_framed() -> None:
    table = _table(4)
    big = pa.table(
        {**{n: table.column(n) for n in table.column_names if n != "note"},
         "note": pa.array(["a", "x" * 50_000, "b", "y" * 60_000])},
    ).select(table.column_names).cast(table.schema)  # fmt: skip
    frames, too_large = encode_frames(big, 20_000, compression=None)
    assert too_large == [1, 3]
    kept = pa.concat_tables(decode_frame(f.value) for f in frames)
    assert kept.column("id").to_pylist() == [0, 2]


def test_an_empty_table_is_no_frame() -> None:
    assert encode_frames(_table(0), 1 << 20) == ([], [])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b"", "the frame is empty"),
        (None, "the frame is empty"),
        (b'{"id": 1}', "not a readable Arrow IPC stream"),
        (encode_frame(_table(50))[:-40], "not a readable Arrow IPC stream"),
    ],
    ids=["empty", "none", "a json row", "truncated"],
)
def test_a_value_that_is_not_a_frame_is_one_clear_error(value: bytes | None, says: str) -> None:
    with pytest.raises(RecordDecodeError, match=says) as caught:
        decode_frame(value, _table(1).schema)
    assert "\n" not in str(caught.value)


def test_a_frame_of_another_schema_is_refused_by_name() -> None:
    table = _table(10)
    other = table.rename_columns(["id", "price", "comment", "at"])
    with pytest.raises(RecordDecodeError, match="comment string") as caught:
        decode_frame(encode_frame(other), table.schema)
    assert "note string" in str(caught.value)


def test_an_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="compression must be one of"):
        encode_frame(_table(1), "snappy")


def test_keys_go_to_the_partition_of_their_crc32_like_librdkafkas_default() -> None:
    """Known CRC-32 values: b"" is 0, b"a" is 0xE8B7BE43. The broker-side check that
    librdkafka agrees is in tests/integration/pipeline/test_framing.py."""
    key = b'{"id":1}'
    parts = partitions_of([b"", b"a", key, key], 7)
    assert parts.tolist() == [0, 0xE8B7BE43 % 7, zlib.crc32(key) % 7, zlib.crc32(key) % 7]
    assert partitions_of([], 3).tolist() == []
    assert set(partitions_of([b"%d" % i for i in range(1000)], 3).tolist()) == {0, 1, 2}
