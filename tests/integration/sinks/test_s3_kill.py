"""kill -9 of a writer between its data files and its commit, on S3: a real writer process
(delta-rs, or pyarrow plus the manifest PUT) talks to moto through a proxy that holds the
commit request forever, so the kill lands there every time. The table and its offsets must
be as before, and the rerun must commit the batch once."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import polars as pl
import pytest

from dataplump.config.models import SinkConfig
from dataplump.sinks import open_sink
from dataplump.sinks.parquet import read_parquet_table
from tests.fixtures.s3 import KEY_ID, REGION, SECRET, S3Server
from tests.unit.sinks.helpers import TOPIC_NAME, rows, target

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class HoldingProxy:
    """Forwards HTTP to ``upstream``; a PUT whose path matches ``hold`` never gets an answer."""

    def __init__(self, upstream: str, hold: str) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self
        pattern = re.compile(hold)
        client = httpx.Client(timeout=60)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "PUT" and pattern.search(self.path):
                    proxy.held.set()
                    proxy.release.wait()
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                answer = client.request(
                    self.command, upstream + self.path, content=body, headers=headers
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                length_out = answer.headers.get("content-length", str(len(answer.content)))
                self.send_header("Content-Length", length_out)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy_factory(s3_server: S3Server) -> Iterator[Any]:
    made: list[HoldingProxy] = []

    def make(hold: str) -> HoldingProxy:
        made.append(HoldingProxy(s3_server.endpoint, hold))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


WRITER = """
import sys, pyarrow as pa, pyarrow.compute as pc
from dataplump.config.models import SinkConfig
from dataplump.sinks import open_sink
from dataplump.sinks.base import LINEAGE_COLUMNS, SinkTarget

kind, path, endpoint, key, secret, region, topic = sys.argv[1:8]
s3 = {"endpoint_url": endpoint, "access_key_id": key, "secret_access_key": secret,
      "region": region, "allow_http": True}
config = SinkConfig.model_validate({"kind": kind, "path": path, "s3": s3})
sink = open_sink("lake", config, SinkTarget("shop", "orders", (), (), "append"))
n = 1000
ids = pa.array(range(100, 100 + n), pa.int64())
big = pa.table({"id": ids, "status": pc.cast(ids, pa.string())})
for name, kind_ in LINEAGE_COLUMNS.items():
    big = big.append_column(name, pa.nulls(n, kind_))
big = big.set_column(big.num_columns - 3, "_dp_topic", pa.repeat(topic, n))
big = big.set_column(big.num_columns - 2, "_dp_partition", pa.repeat(pa.scalar(0, pa.int32()), n))
big = big.set_column(big.num_columns - 1, "_dp_offset", pc.add(ids, 0))
sink.write(big, {(topic, 0): 100 + n})
print("committed", flush=True)
"""


@pytest.mark.parametrize(
    ("kind", "hold"), [("delta", r"/_delta_log/\d+\.json"), ("parquet", r"_dataplump_manifest")]
)
def test_kill_9_between_files_and_commit_on_s3(
    s3_server: S3Server, s3_bucket: str, proxy_factory: Any, kind: str, hold: str
) -> None:
    path = f"s3://{s3_bucket}/lake"
    config = SinkConfig.model_validate({"kind": kind, "path": path, "s3": s3_server.sink_options()})
    sink = open_sink("lake", config, target("append"))
    sink.write(rows([1, 2], [0, 1]), {(TOPIC_NAME, 0): 2})
    sink.close()
    s3 = s3_server.client()
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]}  # type: ignore[attr-defined]

    proxy = proxy_factory(hold)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            kind,
            path,
            proxy.endpoint,
            KEY_ID,
            SECRET,
            REGION,
            TOPIC_NAME,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        held = proxy.held.wait(120)
        assert held, f"the writer never committed; it exited with {writer.poll()}"
    finally:
        writer.kill()  # SIGKILL while its commit request is in flight
        writer.wait()
    after = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]}  # type: ignore[attr-defined]
    orphans = {key for key in after - before if key.endswith(".parquet")}
    assert orphans, "the writer had written its data files"
    assert not {key for key in after - before if not key.endswith(".parquet")}

    sink = open_sink("lake", config, target("append"))
    assert sink.committed() == {(TOPIC_NAME, 0): 2}
    result = sink.write(
        rows(list(range(100, 1100)), list(range(100, 1100))), {(TOPIC_NAME, 0): 1100}
    )
    assert (result.written, result.skipped) == (1000, 0)
    again = sink.write(rows([100], [100]), {(TOPIC_NAME, 0): 1100})
    assert (again.written, again.skipped) == (0, 1)
    sink.close()
    if kind == "delta":
        options = {
            "AWS_ENDPOINT_URL": s3_server.endpoint,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }
        ids = pl.read_delta(f"{path}/orders", storage_options=options)["id"].to_list()
    else:
        ids = read_parquet_table(f"{path}/orders", s3=config.s3)["id"].to_pylist()
    assert sorted(ids) == [1, 2, *range(100, 1100)]
