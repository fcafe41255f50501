"""dlt: PostgreSQL ``lineitem`` -> Delta on the filesystem, its fastest reading backend.

    .cache/bench-venv/bin/python bench/peers/dlt_lake.py URL LAKE_DIR [BACKEND]

``sql_database`` with ``backend`` connectorx (default; or pyarrow) and the
``filesystem`` destination with ``table_format="delta"``. dlt validates types against
its inferred schema only; it has no row rules, which is why the floor adds Polars checks.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(url: str, lake_dir: str, backend: str = "connectorx") -> None:
    lake = Path(lake_dir)
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DLT_DATA_DIR"] = str(lake / "_dlt_home")
    import dlt
    from dlt.sources.sql_database import sql_table

    started = time.perf_counter()
    table = sql_table(
        credentials=url.replace("postgresql+psycopg://", "postgresql://"),
        table="lineitem",
        backend=backend,  # type: ignore[arg-type]
        chunk_size=100_000,
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt",
        destination=dlt.destinations.filesystem(bucket_url=str(lake / "dlt")),
        dataset_name="tpch",
        pipelines_dir=str(lake / "_dlt_pipelines"),
    )
    pipeline.run(table, table_format="delta", write_disposition="append")
    seconds = time.perf_counter() - started

    from deltalake import DeltaTable

    rows = DeltaTable(str(lake / "dlt" / "tpch" / "lineitem")).to_pyarrow_dataset().count_rows()
    print(json.dumps({"rows": rows, "seconds": seconds, "invalid": 0}))


if __name__ == "__main__":
    main(*sys.argv[1:])
