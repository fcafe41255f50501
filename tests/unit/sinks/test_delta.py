"""DeltaSink: append, merge, exactly-once offsets, fencing, partitions, schema evolution."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from dataplump.sinks import SinkError, TransientSinkError, open_sink
from dataplump.sinks.delta import DeltaSink, read_delta
from tests.unit.sinks.helpers import TOPIC_NAME, by_id, config, rows, target

P0 = (TOPIC_NAME, 0)
P1 = (TOPIC_NAME, 1)


@pytest.fixture
def merge_sink(tmp_path: Path) -> Iterator[DeltaSink]:
    sink = DeltaSink("lake", config(tmp_path), target("merge"))
    yield sink
    sink.close()


def read(tmp_path: Path, table: str = "orders") -> pa.Table:
    return read_delta(DeltaTable(str(tmp_path / table)))


def test_open_sink_dispatches_on_kind(tmp_path: Path) -> None:
    sink = open_sink("lake", config(tmp_path), target("append"))
    assert isinstance(sink, DeltaSink)
    assert sink.describe() == f"lake (delta {tmp_path / 'orders'})"
    sink.close()


def test_append_adds_every_row_and_stores_offsets(tmp_path: Path) -> None:
    sink = DeltaSink("lake", config(tmp_path), target("append"))
    assert sink.committed() == {}
    first = sink.write(rows([1, 2, 1], [0, 1, 2]), {P0: 3})
    second = sink.write(rows([3], [0], partition=1), {P1: 1})
    assert (first.written, first.skipped, first.version) == (3, 0, 0)
    assert second.version == 1
    assert read(tmp_path).num_rows == 4
    assert sink.committed() == {P0: 3, P1: 1}
    sink.close()


def test_merge_newest_offset_wins_within_and_across_batches(merge_sink: DeltaSink) -> None:
    merge_sink.write(rows([1, 2, 1], [0, 1, 2], ["old", "b", "new"]), {P0: 3})
    merge_sink.write(rows([2, 3, 2], [5, 3, 4], ["b5", "c", "b4"]), {P0: 6})
    table = read_delta(DeltaTable(str(merge_sink.path)))
    assert by_id(table) == {1: "new", 2: "b5", 3: "c"}


def test_batch_written_twice_is_applied_once(tmp_path: Path) -> None:
    sink = DeltaSink("lake", config(tmp_path), target("append"))
    batch = rows([1, 2], [10, 11])
    sink.write(batch, {P0: 12})
    again = sink.write(batch, {P0: 12})
    assert (again.written, again.skipped, again.version) == (0, 2, 0)
    partly = sink.write(rows([2, 3], [11, 12]), {P0: 13})
    assert (partly.written, partly.skipped) == (1, 1)
    assert sorted(read(tmp_path)["id"].to_pylist()) == [1, 2, 3]
    sink.close()


def test_offsets_survive_reopen_and_advance_without_rows(tmp_path: Path) -> None:
    sink = DeltaSink("lake", config(tmp_path), target("merge"))
    sink.write(rows([1], [0], partition=0), {P0: 1})
    sink.write(rows([2], [7], partition=1), {P1: 8})
    empty = sink.write(rows([], []), {P0: 5})  # all rows of 1..4 filtered out upstream
    assert empty.written == 0
    sink.close()
    reopened = DeltaSink("lake", config(tmp_path), target("merge"))
    assert reopened.committed() == {P0: 5, P1: 8}
    reopened.close()


def test_second_sink_on_same_table_is_fenced(merge_sink: DeltaSink, tmp_path: Path) -> None:
    with pytest.raises(TransientSinkError, match="locked by another loader"):
        DeltaSink("lake", config(tmp_path), target("merge"))
    merge_sink.close()
    DeltaSink("lake", config(tmp_path), target("merge")).close()


def test_lock_is_held_against_another_process(merge_sink: DeltaSink, tmp_path: Path) -> None:
    code = f"""
        from tests.unit.sinks.helpers import config, target
        from dataplump.sinks.delta import DeltaSink
        DeltaSink("lake", config({str(tmp_path)!r}), target("merge"))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "locked by another loader (pid" in done.stderr


def test_offsets_moved_by_another_writer_refuse_the_commit(merge_sink: DeltaSink) -> None:
    merge_sink.write(rows([1], [0]), {P0: 1})
    table = merge_sink._refresh()
    assert table is not None
    seen = merge_sink.committed()
    # someone committed offsets behind the lock's back (e.g. a sink on another host)
    from deltalake import CommitProperties, Transaction, write_deltalake

    write_deltalake(
        table,
        rows([9], [1]),
        mode="append",
        commit_properties=CommitProperties(
            app_transactions=[Transaction(f"dataplump:{TOPIC_NAME}:0", 2)]
        ),
    )
    with pytest.raises(TransientSinkError, match=r"moved from 1 to 2"):
        merge_sink._fence(table, seen, {P0: 3})


def test_partitioning_from_target(tmp_path: Path) -> None:
    sink = DeltaSink("lake", config(tmp_path), target("merge", ("region",)))
    sink.write(rows([1, 2, 3], [0, 1, 2]), {P0: 3})
    sink.write(rows([1], [3], ["moved"]), {P0: 4})
    delta = DeltaTable(str(sink.path))
    assert delta.metadata().partition_columns == ["region"]
    assert {p.name for p in Path(sink.path).iterdir() if p.is_dir()} >= {"region=eu", "region=us"}
    assert by_id(read_delta(delta)) == {1: "moved", 2: "s2", 3: "s3"}
    sink.close()
    with pytest.raises(SinkError, match=r"partitioned by \['region'\] but the config says \[\]"):
        DeltaSink("lake", config(tmp_path), target("merge"))


def test_new_nullable_column_is_added(merge_sink: DeltaSink, tmp_path: Path) -> None:
    merge_sink.write(rows([1, 2], [0, 1]), {P0: 2})
    merge_sink.write(rows([2, 3], [2, 3], extra={"note": pa.array(["x", None])}), {P0: 4})
    merge_sink.write(rows([4], [4]), {P0: 5})  # the column missing again is fine
    table = read(tmp_path)
    notes = dict(zip(table["id"].to_pylist(), table["note"].to_pylist(), strict=True))
    assert notes == {1: None, 2: "x", 3: None, 4: None}


def test_type_change_is_refused_with_column_and_types(merge_sink: DeltaSink) -> None:
    merge_sink.write(rows([1], [0]), {P0: 1})
    changed = rows([2], [1]).set_column(2, "amount", pa.array(["1.5"], pa.string()))
    with pytest.raises(SinkError, match=r"column `amount` from decimal\(12,2\) to string"):
        merge_sink.write(changed, {P0: 2})
    assert merge_sink.committed() == {P0: 1}


def test_type_change_allowed_rewrites_the_table(tmp_path: Path) -> None:
    sink = DeltaSink("lake", config(tmp_path, allow_type_changes=True), target("merge"))
    sink.write(rows([1, 2], [0, 1]), {P0: 2})
    wider = rows([2], [2]).set_column(2, "amount", pa.array([2.5], pa.float64()))
    sink.write(wider, {P0: 3})
    table = read(tmp_path)
    assert table.schema.field("amount").type == pa.float64()
    amounts = dict(zip(table["id"].to_pylist(), table["amount"].to_pylist(), strict=True))
    assert amounts == {1: 0.01, 2: 2.5}
    assert sink.committed() == {P0: 3}
    sink.close()


def test_merge_without_primary_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="merge mode but has no primary key"):
        DeltaSink("lake", config(tmp_path), target("append").__class__("p", "t", (), (), "merge"))


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="cannot open lake table `orders`: Not a directory"):
        DeltaSink("lake", config(blocker), target("merge"))


def test_ops_table_appends_without_key_or_lineage(tmp_path: Path) -> None:
    sink = DeltaSink("lake", config(tmp_path), target("append", table="_runs"))
    sink.write(pa.table({"run": ["r1"], "rows": [3]}), {})
    sink.write(pa.table({"run": ["r2"], "rows": [4]}), {})
    assert read(tmp_path, "_runs").num_rows == 2
    sink.close()


KILL_SCRIPT = """
import sys, time, types, uuid, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
import dataplump.sinks.delta as delta
from dataplump.sinks.base import LINEAGE_COLUMNS, SinkTarget

def write_files_then_hang(table, data, **_options):
    # What delta-rs does before its commit: data files in the table folder. The commit
    # never comes, so the kill lands between the files and the log, every time.
    pq.write_table(data, f"{sys.argv[1]}/orders/part-00000-{uuid.uuid4()}-c000.snappy.parquet")
    print("files written", flush=True)
    time.sleep(600)

delta.write_deltalake = write_files_then_hang
config = types.SimpleNamespace(kind="delta", path=sys.argv[1], allow_type_changes=False)
sink = delta.DeltaSink("lake", config, SinkTarget("shop", "orders", (), (), "append"))
n = 1000
ids = pa.array(range(n), pa.int64())
big = pa.table({"id": ids, "status": pc.cast(ids, pa.string())})
for name, kind in LINEAGE_COLUMNS.items():
    big = big.append_column(name, pa.nulls(n, kind))
big = big.set_column(big.num_columns - 3, "_dp_topic", pa.repeat("shop.orders.processed", n))
big = big.set_column(big.num_columns - 2, "_dp_partition", pa.repeat(pa.scalar(0, pa.int32()), n))
big = big.set_column(big.num_columns - 1, "_dp_offset", pc.add(ids, 100))
sink.write(big, {("shop.orders.processed", 0): 100 + n})
print("committed", flush=True)
"""


def test_kill_9_before_commit_leaves_table_as_it_was(tmp_path: Path) -> None:
    sink = DeltaSink("lake", config(tmp_path), target("append"))
    sink.write(rows([1, 2], [0, 1]), {P0: 2})
    sink.close()
    log = tmp_path / "orders" / "_delta_log"
    before_files = set((tmp_path / "orders").glob("*.parquet"))
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    # Deterministic: the writer stops between its data files and its commit (see the script).
    assert process.stdout.readline().strip() == "files written"
    process.kill()
    process.wait()
    assert len(set((tmp_path / "orders").glob("*.parquet")) - before_files) == 1  # an orphan
    assert sorted(p.name for p in log.glob("*.json")) == ["00000000000000000000.json"]
    # polars reads the table: deltalake 1.6.6's to_pyarrow_table() aborts the process at
    # interpreter exit in about 9 runs of 10 ("terminate called without an active exception")
    code = "import sys, deltalake, polars; t = deltalake.DeltaTable(sys.argv[1]);"
    code += "print(t.version(), polars.read_delta(sys.argv[1]).height)"
    fresh = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "orders")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert fresh.stdout.split() == ["0", "2"]
    reopened = DeltaSink("lake", config(tmp_path), target("append"))  # the lock died with it
    assert reopened.committed() == {P0: 2}
    reopened.close()
