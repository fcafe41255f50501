"""ParquetSink: manifest commits, offsets, leftovers of crashed writes, schema evolution."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataplump.sinks import SinkError, TransientSinkError, open_sink
from dataplump.sinks.parquet import MANIFEST, ParquetSink, read_parquet_table
from tests.unit.sinks.helpers import TOPIC_NAME, config, rows, target

P0 = (TOPIC_NAME, 0)


def sink(path: Path, **kwargs: object) -> ParquetSink:
    opened = open_sink("files", config(path, kind="parquet"), target("append", **kwargs))  # type: ignore[arg-type]
    assert isinstance(opened, ParquetSink)
    return opened


def test_append_commits_files_and_offsets_in_the_manifest(tmp_path: Path) -> None:
    files = sink(tmp_path)
    assert files.write(rows([1, 2], [0, 1]), {P0: 2}).version == 1
    again = files.write(rows([1, 2, 3], [0, 1, 2]), {P0: 3})
    assert (again.written, again.skipped) == (1, 2)
    assert sorted(read_parquet_table(tmp_path / "orders")["id"].to_pylist()) == [1, 2, 3]
    assert files.committed() == {P0: 3}
    files.close()
    assert sink(tmp_path).committed() == {P0: 3}


def test_merge_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"only appends.*set `mode: append`"):
        ParquetSink("files", config(tmp_path, kind="parquet"), target("merge"))


def test_second_sink_is_fenced(tmp_path: Path) -> None:
    files = sink(tmp_path)
    with pytest.raises(TransientSinkError, match="locked by another loader"):
        sink(tmp_path)
    files.close()


def test_files_outside_the_manifest_are_invisible_and_cleaned(tmp_path: Path) -> None:
    files = sink(tmp_path)
    files.write(rows([1], [0]), {P0: 1})
    folder = tmp_path / "orders"
    manifest = (folder / MANIFEST).read_text()
    # a crashed write: a staged file, a renamed but uncommitted file, a temp manifest
    pq.write_table(rows([8], [5]), folder / ".staging-x-0.parquet")
    pq.write_table(rows([9], [6]), folder / "part-x-0.parquet")
    (folder / ".manifest-x.tmp").write_text("{")
    assert read_parquet_table(folder)["id"].to_pylist() == [1]
    assert (folder / MANIFEST).read_text() == manifest
    files.write(rows([2], [1]), {P0: 2})
    assert not (folder / ".staging-x-0.parquet").exists()
    assert not (folder / "part-x-0.parquet").exists()
    assert not (folder / ".manifest-x.tmp").exists()
    assert sorted(read_parquet_table(folder)["id"].to_pylist()) == [1, 2]
    listed = json.loads((folder / MANIFEST).read_text())["files"]
    assert all((folder / f["path"]).is_file() for f in listed)


def test_failed_write_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = sink(tmp_path)
    files.write(rows([1], [0]), {P0: 1})

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dataplump.sinks.parquet._replace_json", disk_full)
    with pytest.raises(TransientSinkError, match=r"No space left on device.*retry"):
        files.write(rows([2], [1]), {P0: 2})
    assert files.committed() == {P0: 1}
    assert read_parquet_table(tmp_path / "orders")["id"].to_pylist() == [1]


def test_partitioned_and_new_column(tmp_path: Path) -> None:
    files = sink(tmp_path, partition_by=("region",))
    files.write(rows([1, 2], [0, 1]), {P0: 2})
    files.write(rows([3], [2], extra={"note": pa.array(["n"])}), {P0: 3})
    assert {p.name for p in (tmp_path / "orders").iterdir() if p.is_dir()} == {
        "region=eu",
        "region=us",
    }
    table = read_parquet_table(tmp_path / "orders").sort_by("id")
    assert table["region"].to_pylist() == ["eu", "us", "eu"]
    assert table["note"].to_pylist() == [None, None, "n"]


def test_type_change_refused_unless_allowed(tmp_path: Path) -> None:
    files = sink(tmp_path)
    files.write(rows([1], [0]), {P0: 1})
    changed = rows([2], [1]).set_column(0, "id", pa.array(["two"]))
    with pytest.raises(SinkError, match=r"column `id` from int64 to string"):
        files.write(changed, {P0: 2})
    files.close()
    allowed = ParquetSink(
        "files", config(tmp_path, kind="parquet", allow_type_changes=True), target("append")
    )
    allowed.write(changed, {P0: 2})
    assert sorted(read_parquet_table(tmp_path / "orders")["id"].to_pylist()) == ["1", "two"]
