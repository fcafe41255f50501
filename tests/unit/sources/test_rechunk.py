"""Batches are re-cut to exactly batch_size rows, the last one smaller."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dataplump.sources.base import rechunk


def _batches(*sizes: int) -> list[pa.RecordBatch]:
    start, out = 0, []
    for size in sizes:
        out.append(pa.record_batch({"id": pa.array(range(start, start + size), pa.int64())}))
        start += size
    return out


@pytest.mark.parametrize(
    ("sizes", "size", "expected"),
    [
        ((), 3, []),
        ((0, 0), 3, []),
        ((10,), 3, [3, 3, 3, 1]),
        ((3, 3), 3, [3, 3]),
        ((1, 1, 1, 1), 3, [3, 1]),
        ((2, 5, 0, 4), 4, [4, 4, 3]),
        ((100,), 1000, [100]),
    ],
)
def test_sizes(sizes: tuple[int, ...], size: int, expected: list[int]) -> None:
    out = list(rechunk(iter(_batches(*sizes)), size))
    assert [b.num_rows for b in out] == expected
    ids = [v for b in out for v in b.column("id").to_pylist()]
    assert ids == list(range(sum(sizes)))


def test_whole_batches_are_passed_through_without_copy() -> None:
    (batch,) = _batches(4)
    (out,) = rechunk(iter([batch]), 4)
    assert out.column(0).buffers()[1].address == batch.column(0).buffers()[1].address
