"""The `s3:` settings of a lake sink: URL paths, validation, masked secrets, SigV4."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from pydantic import ValidationError

from dataplump.config import load_config
from dataplump.config.models import SinkConfig
from dataplump.sinks._lake import table_place
from dataplump.sinks._s3 import S3Location, canonical_query, sign

S3 = {"access_key_id": "AKID", "secret_access_key": "very-secret", "region": "eu-west-1"}


def test_s3_url_is_kept_as_text_and_table_places_follow() -> None:
    config = SinkConfig.model_validate({"path": "s3://my-bucket/lake/", "s3": S3})
    assert config.path == "s3://my-bucket/lake"
    assert config.on_s3
    place = table_place(config, "orders")
    assert place.uri == "s3://my-bucket/lake/orders"
    assert place.local is None
    assert place.storage_options == {
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "very-secret",
    }
    bare = SinkConfig.model_validate({"kind": "parquet", "path": "s3://my-bucket"})
    assert table_place(bare, "_dlq").uri == "s3://my-bucket/_dlq"


def test_local_paths_stay_relative_to_the_pipeline_file() -> None:
    config = SinkConfig.model_validate({"path": "lake"}, context={"base_dir": Path("/p")})
    assert config.path == Path("/p/lake")
    assert table_place(config, "orders").local == Path("/p/lake/orders")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"path": "gs://bucket/lake"}, "other URL schemes are not supported"),
        ({"path": "s3://B_ad/lake"}, "bucket: 3-63 lower-case letters"),
        ({"path": "s3://bucket/a//b"}, "empty folder name"),
        ({"path": "lake", "s3": S3}, "`s3` is for a `delta` or `parquet` sink whose `path`"),
        (
            {"path": "s3://bucket/x", "s3": {"endpoint_url": "http://127.0.0.1:9000"}},
            "set `allow_http: true`",
        ),
        ({"path": "s3://bucket/x", "s3": {"endpoint_url": "minio:9000"}}, "expected a URL"),
        ({"path": "s3://bucket/x", "s3": {"access_key_id": "AKID"}}, "needs `secret_access_key`"),
        ({"path": "s3://bucket/x", "s3": {"nope": 1}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_s3_settings_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("`", ".").replace("(", ".")):
        SinkConfig.model_validate(data)


def test_secrets_are_masked_and_come_from_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "dataplump.yaml"
    file.write_text(
        "pipeline: {name: p}\n"
        "source: {url: 'sqlite:///x.db'}\n"
        "sinks:\n"
        "  lake:\n"
        "    path: s3://bucket/lake\n"
        "    s3: {access_key_id: AKID, secret_access_key: '${SECRET}', session_token: tok}\n"
        "tables: {orders: {primary_key: id}}\n"
    )
    config = load_config(file, env={"SECRET": "very-secret"})
    sink = config.sinks["lake"]
    assert sink.s3 is not None
    assert sink.s3.secret_access_key is not None
    assert sink.s3.secret_access_key.get_secret_value() == "very-secret"
    shown = f"{config.redacted_dump()} {sink!r} {sink}"
    assert "very-secret" not in shown
    assert "tok'" not in shown
    assert config.redacted_dump()["sinks"]["lake"]["s3"]["secret_access_key"] == "**********"


def test_keys_fall_back_to_the_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/")
    monkeypatch.delenv("AWS_REGION", raising=False)
    where = S3Location.of("s3://bucket/lake", None)
    assert (where.access_key_id, where.secret_access_key) == ("ENVKEY", "envsecret")
    assert (where.endpoint_url, where.region) == ("http://127.0.0.1:9000", "us-east-1")


def test_signature_matches_botocore() -> None:
    where = S3Location(
        "lake", "p", "http://127.0.0.1:9000", "eu-west-1", "AKID", "SECRET", "TOK", True
    )
    url = "http://127.0.0.1:9000/lake/p/orders/_dataplump_manifest.json"
    params = {"list-type": "2", "prefix": "p/x y/"}
    body = b'{"a":1}'
    request = AWSRequest(
        "PUT", f"{url}?{canonical_query(params)}", data=body, headers={"If-Match": '"abc"'}
    )
    S3SigV4Auth(Credentials("AKID", "SECRET", "TOK"), "s3", "eu-west-1").add_auth(request)
    import datetime as dt

    now = dt.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    ours = sign("PUT", url, params, {"If-Match": '"abc"'}, body, where, now.replace(tzinfo=dt.UTC))
    assert ours["Authorization"] == request.headers["Authorization"]
