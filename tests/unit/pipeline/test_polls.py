"""Polls of about ``--max-records`` rows, whichever framing the records use.

The sizing is pure logic over what ``consume`` hands back: a list standing in for the
consumer's fetched records is enough (the framed topics themselves are exercised against
the real broker in ``tests/integration/pipeline/test_framing.py``).
"""

from __future__ import annotations

from typing import Any

from dataplump.bus.frames import rows_in
from dataplump.pipeline._polls import RowPoll


class Record:
    def __init__(self, rows: int) -> None:
        self.rows = rows

    def key(self) -> bytes | None:
        return None if self.rows > 1 else b'{"id": 1}'

    def headers(self) -> list[tuple[str, bytes]]:
        if self.rows == 1:
            return []
        return [("dp.framing", b"arrow"), ("dp.rows", b"%d" % self.rows)]

    def error(self) -> None:
        return None


class Fetched:
    """The records a consumer holds, handed out as ``consume`` does; asks are kept."""

    def __init__(self, rows: list[int]) -> None:
        self.records = [Record(n) for n in rows]
        self.asks: list[int] = []

    def consume(self, n: int, timeout: float) -> list[Record]:
        self.asks.append(n)
        taken, self.records = self.records[:n], self.records[n:]
        return taken


def poll(size: RowPoll, fetched: Fetched) -> list[int]:
    client: Any = fetched
    return list(map(rows_in, size.poll(client, 0.1)))


def test_row_records_are_asked_for_by_the_rows() -> None:
    fetched = Fetched([1] * 1_200)
    size = RowPoll(500, framed=False, largest_frame=10_000)
    assert poll(size, fetched) == [1] * 500
    assert fetched.asks == [500]


def test_frames_come_a_few_at_a_time_and_single_rows_fill_up_the_rest() -> None:
    size = RowPoll(1_000, framed=True, largest_frame=5_000)
    fetched = Fetched([300] * 10 + [1] * 2_000)
    # none seen yet: one record (a frame could hold 5,000), then by the largest seen
    assert poll(size, fetched) == [300] * 4  # 1,200 rows: at most one frame over
    assert fetched.asks == [1, 2, 1]
    assert poll(size, fetched) == [300] * 4
    # dead-letter records after the last frames: asked for by the largest frame seen,
    # never by the last record's single row, until the poll holds its rows
    assert poll(size, fetched) == [300] * 2 + [1] * 400
    before = len(fetched.asks)
    assert poll(size, fetched) == [1] * 1_000
    assert max(fetched.asks[before:]) == 3  # a frame of 300 may come next: 1,000 // 300


def test_a_frame_over_the_rows_is_a_poll_alone() -> None:
    size = RowPoll(100, framed=True, largest_frame=5_000)
    fetched = Fetched([4_000, 4_000])
    assert poll(size, fetched) == [4_000]
    assert poll(size, fetched) == [4_000]
    assert poll(size, fetched) == []
