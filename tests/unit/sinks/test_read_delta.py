"""``read_delta``: the Delta reader DataPlump uses instead of ``to_pyarrow_table()``, which in
deltalake 1.6.6 aborts the process at interpreter exit (exit code 134)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from dataplump.sinks.delta import read_delta

TABLE = pa.table(
    {
        "i": pa.array([1, 2], pa.int32()),
        "s": ["a", None],
        "region": ["eu", "us"],
        "ts": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * 2, pa.timestamp("us", "UTC")),
        "d": pa.array([Decimal("1.20"), None], pa.decimal128(12, 2)),
        "l": pa.array([[1], [2, 3]], pa.list_(pa.int64())),
        "day": pa.array([dt.date(2024, 1, 1)] * 2, pa.date32()),
    }
)


def test_types_and_order_are_the_tables(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "t"), TABLE, partition_by=["region"])
    table = DeltaTable(str(tmp_path / "t"))
    read = read_delta(table)
    assert read.schema == pa.schema(table.schema().to_arrow())
    assert read.column_names == TABLE.column_names
    assert read.sort_by("i").to_pylist() == TABLE.to_pylist()
    assert read_delta(table, ["region", "i"]).column_names == ["region", "i"]


def test_reads_the_loaded_version(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "t"), TABLE)
    old = DeltaTable(str(tmp_path / "t"))
    write_deltalake(str(tmp_path / "t"), TABLE, mode="append")
    assert read_delta(old).num_rows == 2
    assert read_delta(DeltaTable(str(tmp_path / "t"))).num_rows == 4


@pytest.mark.slow
def test_a_process_that_read_with_it_exits_cleanly(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "t"), TABLE)
    code = (
        "import sys; from deltalake import DeltaTable; from dataplump.sinks.delta import"
        " read_delta; print(read_delta(DeltaTable(sys.argv[1])).num_rows)"
    )
    codes = [
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "t")], capture_output=True, check=False
        ).returncode
        for _ in range(3)
    ]
    assert codes == [0, 0, 0]  # to_pyarrow_table(): 134 (abort) in 10 runs of 10 here
