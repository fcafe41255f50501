"""The Spark session of the Spark engine: local or on a cluster, bound to 127.0.0.1.

    >>> from dataplump.config import SparkConfig
    >>> spark = spark_session(SparkConfig(master="local[2]"), "shop")  # doctest: +SKIP
    >>> spark.sparkContext.uiWebUrl  # doctest: +SKIP
    'http://127.0.0.1:4040'

Spark's Kafka source (``spark-sql-kafka-0-10``, the version of the installed PySpark)
and any JDBC driver a reference table needs come from Maven Central through
``spark.jars.packages``, resolved once into ``$DATAPLUMP_CACHE_DIR/spark/ivy``. Times
are UTC (``spark.sql.session.timeZone``) so that timestamps read the same as in the
DuckDB engine; the driver, its UI and a local master listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dataplump.errors import KafkaServiceError, TerminalError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from dataplump.config import SparkConfig

MIN_JAVA = 17
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a ``spark://`` master to accept a connection before giving up."""
_lock = threading.Lock()


class SparkStartError(TerminalError):
    """Spark cannot start: PySpark or Java missing, the master unreachable, jars not found."""


def kafka_package() -> str:
    """Maven coordinates of Spark's Kafka source and sink for the installed PySpark."""
    return f"org.apache.spark:spark-sql-kafka-0-10_2.13:{_pyspark_version()}"


def spark_session(config: SparkConfig, app: str, *, packages: Iterable[str] = ()) -> SparkSession:
    """The Spark session for ``app`` (created on the first call of a process, reused after).

    ``packages`` are further Maven coordinates (JDBC drivers). Raises
    :class:`SparkStartError` with one line saying what is wrong and how to fix it.
    """
    from dataplump.services.kafka import cache_dir, find_java

    try:
        java = find_java()
    except KafkaServiceError as exc:
        raise SparkStartError(str(exc).replace("Kafka needs", "Spark needs")) from None
    _pyspark_version()
    _probe_master(config.master)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the UI and block manager too
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if "JAVA_HOME" not in os.environ:
        os.environ["JAVA_HOME"] = str(_java_home(java))
    # PySpark 4.2 warns about pandas 3 on import and on every conversion; the steps'
    # equivalence tests are what tells whether it works
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    from pyspark.sql import SparkSession

    jars = ",".join(dict.fromkeys([kafka_package(), *packages, *config.packages]))
    settings = {
        "spark.app.name": f"dataplump {app}",
        "spark.jars.packages": jars,
        "spark.jars.ivy": str(cache_dir() / "spark" / "ivy"),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.pyspark.python": sys.executable,  # executors of a cluster on this machine too
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "true" if config.ui else "false",
        **config.conf,
    }
    builder = SparkSession.builder.master(config.master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _lock:
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # py4j and PySpark raise many kinds; one line for the user
            raise SparkStartError(
                f"Spark could not start (master {config.master}): {_first_line(exc)}"
            ) from None
    spark.sparkContext.setLogLevel(config.log_level)
    return spark


def ui_address(spark: SparkSession) -> str | None:
    """The Spark UI's address, or None when the UI is off."""
    return spark.sparkContext.uiWebUrl


def _pyspark_version() -> str:
    try:
        import pyspark
    except ImportError:
        raise SparkStartError(
            "PySpark is not installed: `transform.engine: spark` needs it"
            " (pip install 'dataplump[spark]')"
        ) from None
    return str(pyspark.__version__)


def _probe_master(master: str) -> None:
    """Fail fast and clearly when a ``spark://`` master does not answer (Spark itself
    retries for a minute and then says only that all masters are unresponsive)."""
    if not master.startswith("spark://"):
        return
    for address in master.removeprefix("spark://").split(","):
        parts = urlsplit(f"//{address}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 7077
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
    raise SparkStartError(
        f"Spark master {master} is unreachable ({reason}): start it"
        " (spark-class org.apache.spark.deploy.master.Master) or fix `transform.spark.master`"
    )


def _java_home(java: str) -> str:
    from pathlib import Path

    return str(Path(java).resolve().parent.parent)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def arrow_frame(spark: SparkSession, table: Any) -> DataFrame:
    """A DataFrame of an Arrow table with the table's own types: without the explicit
    schema, ``createDataFrame`` turns a timestamp without a zone into a zoned one."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame(table, schema=from_arrow_schema(table.schema))
