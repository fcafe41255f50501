"""Delta and Parquet sinks on S3: a real S3-compatible endpoint (moto's server, its own
process), written by the sinks and read back with independent readers (polars, pyarrow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.config.models import SinkConfig
from dataplump.sinks import SinkError, TransientSinkError, open_sink
from dataplump.sinks.delta import DeltaSink, read_delta
from dataplump.sinks.parquet import ParquetSink, read_parquet_table
from tests.fixtures.s3 import KEY_ID, SECRET, S3Server, start_moto, stop_moto
from tests.unit.sinks.helpers import TOPIC_NAME, by_id, rows, target

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SinkFactory = Callable[..., dict[str, object]]


def sink_config(make: SinkFactory, kind: str = "delta", **extra: object) -> SinkConfig:
    return SinkConfig.model_validate(make(kind, **extra))


def delta_rows(config: SinkConfig, table: str = "orders") -> pl.DataFrame:
    """Read with polars, independently of the sink."""
    place = f"{config.path}/{table}"
    return pl.read_delta(place, storage_options=_options(config))


def _options(config: SinkConfig) -> dict[str, str]:
    assert config.s3 is not None
    assert config.s3.endpoint_url is not None
    assert config.s3.secret_access_key is not None
    return {
        "AWS_ENDPOINT_URL": config.s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": str(config.s3.access_key_id),
        "AWS_SECRET_ACCESS_KEY": config.s3.secret_access_key.get_secret_value(),
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


def test_delta_append_and_merge_on_s3(s3_sink_config: SinkFactory) -> None:
    config = sink_config(s3_sink_config)
    merge = open_sink("lake", config, target("merge"))
    assert isinstance(merge, DeltaSink)
    assert merge.describe().startswith("lake (delta s3://")
    merge.write(rows([1, 2, 3], [0, 1, 2]), {(TOPIC_NAME, 0): 3})
    result = merge.write(rows([2, 4], [3, 4], ["new2", "new4"]), {(TOPIC_NAME, 0): 5})
    assert (result.written, result.skipped) == (2, 0)
    again = merge.write(rows([2, 4], [3, 4], ["new2", "new4"]), {(TOPIC_NAME, 0): 5})
    assert (again.written, again.skipped) == (0, 2)
    assert merge.committed() == {(TOPIC_NAME, 0): 5}
    merge.close()
    read = delta_rows(config).to_arrow()
    assert by_id(read) == {1: "s1", 2: "new2", 3: "s3", 4: "new4"}

    append = open_sink("lake", config, target("append", table="events"))
    append.write(rows([1, 2], [0, 1]), {(TOPIC_NAME, 0): 2})
    append.write(rows([1, 2], [2, 3]), {(TOPIC_NAME, 0): 4})
    append.close()
    assert delta_rows(config, "events").height == 4

    reopened = DeltaSink("lake", config, target("merge"))  # offsets come back from S3
    assert reopened.committed() == {(TOPIC_NAME, 0): 5}
    reopened.close()


def test_delta_type_change_rewrite_reads_with_polars_on_s3(s3_sink_config: SinkFactory) -> None:
    config = sink_config(s3_sink_config, allow_type_changes=True)
    sink = DeltaSink("lake", config, target("merge"))
    sink.write(rows([1, 2], [0, 1]), {(TOPIC_NAME, 0): 2})
    changed = rows([3], [2])
    changed = changed.set_column(
        changed.schema.get_field_index("amount"), "amount", changed["amount"].cast("string")
    )
    sink.write(changed, {(TOPIC_NAME, 0): 3})
    assert sink.place.storage_options is not None
    table = read_delta(DeltaTable(sink.place.uri, storage_options=sink.place.storage_options))
    assert str(table.schema.field("amount").type) == "string"
    assert sorted(table["id"].to_pylist()) == [1, 2, 3]
    sink.close()


def test_parquet_append_on_s3(s3_sink_config: SinkFactory) -> None:
    config = sink_config(s3_sink_config, "parquet")
    sink = open_sink("files", config, target("append", partition_by=("region",)))
    assert isinstance(sink, ParquetSink)
    sink.write(rows([1, 2, 3], [0, 1, 2]), {(TOPIC_NAME, 0): 3})
    result = sink.write(rows([3, 4], [2, 3]), {(TOPIC_NAME, 0): 4})
    assert (result.written, result.skipped) == (1, 1)
    sink.close()
    table = read_parquet_table(f"{config.path}/orders", s3=config.s3)
    assert sorted(table["id"].to_pylist()) == [1, 2, 3, 4]
    reopened = ParquetSink("files", config, target("append", partition_by=("region",)))
    assert reopened.committed() == {(TOPIC_NAME, 0): 4}
    assert reopened.version == 2
    reopened.close()


def test_delta_exactly_once_when_a_concurrent_commit_wins(
    s3_sink_config: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two loaders of one partition on S3 (no lock file there): the one whose commit lost
    the race fails as transient with nothing visible, and its retry skips every row."""
    config = sink_config(s3_sink_config)
    first = DeltaSink("lake", config, target("append"))
    first.write(rows([1], [0]), {(TOPIC_NAME, 0): 1})
    second = DeltaSink("lake", config, target("append"))
    batch = rows([2, 3], [1, 2])
    fence = DeltaSink._fence

    def other_commits_first(self: DeltaSink, *args: object) -> None:
        if self is first:
            monkeypatch.setattr(DeltaSink, "_fence", fence)
            second.write(batch, {(TOPIC_NAME, 0): 3})  # wins: version 1 with offsets 1..2
        fence(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(DeltaSink, "_fence", other_commits_first)
    with pytest.raises(TransientSinkError, match=r"moved from 1 to 3|concurrent commit"):
        first.write(batch, {(TOPIC_NAME, 0): 3})
    retry = first.write(batch, {(TOPIC_NAME, 0): 3})
    assert (retry.written, retry.skipped) == (0, 2)
    assert sorted(delta_rows(config)["id"].to_list()) == [1, 2, 3]
    first.close()
    second.close()


def test_delta_commit_race_is_fenced_by_delta_rs_conflict_check(
    s3_sink_config: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other writer commits after the sink's own re-check: delta-rs's conditional PUT of
    the log entry loses (HTTP 412) and its conflict check refuses the same app id."""
    config = sink_config(s3_sink_config)
    first = DeltaSink("lake", config, target("append"))
    first.write(rows([1], [0]), {(TOPIC_NAME, 0): 1})
    second = DeltaSink("lake", config, target("append"))
    batch = rows([2, 3], [1, 2])
    commit = DeltaSink._commit

    def other_commits_between(self: DeltaSink, *args: object) -> None:
        if self is first:
            monkeypatch.setattr(DeltaSink, "_commit", commit)
            second.write(batch, {(TOPIC_NAME, 0): 3})
        commit(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(DeltaSink, "_commit", other_commits_between)
    with pytest.raises(TransientSinkError, match="concurrent commit"):
        first.write(batch, {(TOPIC_NAME, 0): 3})
    retry = first.write(batch, {(TOPIC_NAME, 0): 3})
    assert (retry.written, retry.skipped) == (0, 2)
    assert sorted(delta_rows(config)["id"].to_list()) == [1, 2, 3]
    assert first.committed() == {(TOPIC_NAME, 0): 3}
    first.close()
    second.close()


def test_parquet_exactly_once_when_a_concurrent_commit_wins(
    s3_sink_config: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sink_config(s3_sink_config, "parquet")
    first = ParquetSink("files", config, target("append"))
    first.write(rows([1], [0]), {(TOPIC_NAME, 0): 1})
    second = ParquetSink("files", config, target("append"))
    batch = rows([2, 3], [1, 2])
    write_files = ParquetSink._write_files

    def other_commits_between(self: ParquetSink, *args: object) -> object:
        if self is first:
            monkeypatch.setattr(ParquetSink, "_write_files", write_files)
            second.write(batch, {(TOPIC_NAME, 0): 3})
        return write_files(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ParquetSink, "_write_files", other_commits_between)
    with pytest.raises(TransientSinkError, match="another writer committed"):
        first.write(batch, {(TOPIC_NAME, 0): 3})
    retry = first.write(batch, {(TOPIC_NAME, 0): 3})
    assert (retry.written, retry.skipped) == (0, 2)
    table = read_parquet_table(f"{config.path}/orders", s3=config.s3)
    assert sorted(table["id"].to_pylist()) == [1, 2, 3]
    listed = {f.key for f in _objects(config)}
    assert sum(key.endswith(".parquet") for key in listed) == 2  # the loser's file is gone
    first.close()
    second.close()


def _objects(config: SinkConfig) -> list[Any]:
    import boto3  # type: ignore[import-untyped]

    assert config.s3 is not None
    bucket = str(config.path).removeprefix("s3://").split("/")[0]
    resource = boto3.resource(
        "s3",
        endpoint_url=config.s3.endpoint_url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    return list(resource.Bucket(bucket).objects.all())


@pytest.mark.parametrize("kind", ["delta", "parquet"])
def test_missing_bucket_is_one_clear_line(s3_server: S3Server, kind: str) -> None:
    config = SinkConfig.model_validate(
        {"kind": kind, "path": "s3://no-such-bucket/lake", "s3": s3_server.sink_options()}
    )
    with pytest.raises(SinkError) as caught:
        open_sink("lake", config, target("append"))
    message = str(caught.value)
    assert "\n" not in message
    assert "bucket `no-such-bucket` does not exist" in message
    assert message.startswith("sink `lake`: S3 s3://no-such-bucket/lake/orders")


@pytest.mark.parametrize("kind", ["delta", "parquet"])
def test_wrong_credentials_are_one_clear_line(tmp_path: Path, kind: str) -> None:
    """A moto server that checks keys (INITIAL_NO_AUTH_ACTION_COUNT=0) knows none of ours."""
    process, endpoint = start_moto(tmp_path / "moto.log", {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        options = S3Server(endpoint).sink_options() | {"secret_access_key": "wrong"}
        config = SinkConfig.model_validate({"kind": kind, "path": "s3://lake/data", "s3": options})
        with pytest.raises(SinkError) as caught:
            open_sink("lake", config, target("append"))
    finally:
        stop_moto(process)
    message = str(caught.value)
    assert "\n" not in message
    assert "wrong" not in message  # the secret is never shown
    assert "S3 does not know the access key id" in message
    assert "fix `s3.access_key_id`" in message


def test_unreachable_endpoint_is_transient() -> None:
    config = SinkConfig.model_validate(
        {
            "kind": "parquet",
            "path": "s3://lake/data",
            "s3": {"endpoint_url": "http://127.0.0.1:9", "allow_http": True}
            | {"access_key_id": KEY_ID, "secret_access_key": SECRET},
        }
    )
    with pytest.raises(TransientSinkError, match=r"cannot reach S3 s3://lake/data/orders at"):
        open_sink("lake", config, target("append"))


PIPELINE = """
pipeline: {{name: s3test}}
source: {{url: "sqlite:///{db}"}}
sinks:
  lake:
    kind: delta
    path: s3://{bucket}/lake
    mode: append
    s3:
      endpoint_url: {endpoint}
      access_key_id: {key}
      secret_access_key: ${{LAKE_SECRET}}
      allow_http: true
tables:
  orders: {{primary_key: id}}
"""


def test_lake_commands_on_an_s3_lake(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_SECRET", SECRET)
    file = tmp_path / "dataplump.yaml"
    file.write_text(
        PIPELINE.format(
            db=tmp_path / "x.db", bucket=s3_bucket, endpoint=s3_server.endpoint, key=KEY_ID
        )
    )
    from dataplump.config import load_config

    config = load_config(file).sinks["lake"]
    assert "testing-secret" not in repr(config)
    sink = DeltaSink("lake", config, target("append"))
    for n in range(4):
        sink.write(rows([n], [n]), {(TOPIC_NAME, 0): n + 1})
    sink.close()

    runner = CliRunner()
    shown = runner.invoke(app, ["lake", "history", "-c", str(file), "--table", "orders"])
    assert shown.exit_code == 0, shown.output
    assert "lake/orders" in shown.output
    assert "WRITE" in shown.output
    assert f"dataplump:{TOPIC_NAME}:0" in "".join(shown.output.split())  # wrapped column

    compacted = runner.invoke(app, ["lake", "compact", "-c", str(file), "--table", "orders"])
    assert compacted.exit_code == 0, compacted.output
    assert "lake/orders" in compacted.output
    assert delta_rows(config).height == 4

    dry = runner.invoke(
        app, ["lake", "vacuum", "-c", str(file), "--retention-hours", "0", "--force", "--dry-run"]
    )
    assert dry.exit_code == 0, dry.output
    assert "lake/orders: would delete 4 file(s)" in dry.output
    done = runner.invoke(
        app, ["lake", "vacuum", "-c", str(file), "--retention-hours", "0", "--force"]
    )
    assert done.exit_code == 0, done.output
    assert "lake/orders: deleted 4 file(s)" in done.output
    assert sorted(delta_rows(config)["id"].to_list()) == [0, 1, 2, 3]
