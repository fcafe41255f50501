"""The Spark engine: a table's steps and output contract as Spark DataFrame work.

Imported only when ``transform.engine: spark`` (PySpark is the optional extra
``dataplump[spark]``). Modules:

- :mod:`~dataplump.engine.spark.session`: the Spark session (jars from Maven Central,
  127.0.0.1, UTC) and one-line errors when Spark cannot start;
- :mod:`~dataplump.engine.spark.builtin`: the built-in cleaning steps as Spark column
  expressions, with the Arrow engine's per-row failures;
- :mod:`~dataplump.engine.spark.sql`: SQL steps translated from DuckDB's dialect with
  sqlglot, refused before data flows when Spark cannot run them;
- :mod:`~dataplump.engine.spark.python_steps`: pandas and polars steps through
  ``mapInArrow``;
- :mod:`~dataplump.engine.spark.references`: reference tables over JDBC and Spark's
  file readers;
- :mod:`~dataplump.engine.spark.transform`: :class:`SparkTableTransform`, a table's steps
  on a DataFrame (lineage, failures, filtered counts).

The output contract on Spark is :mod:`dataplump.contracts.spark_check`; the stage that
reads Kafka with Structured Streaming is :mod:`dataplump.pipeline.spark_transform`.
Everything is described in ``docs/spark.md``.
"""
