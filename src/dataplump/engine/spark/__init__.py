"""The Spark engine: a table's steps and output contract as Spark DataFrame work.

Imported only when ``transform.engine: spark`` (PySpark is the optional extra
``dataplump[spark]``). Modules: :mod:`~dataplump.engine.spark.session` (the Spark
session, its jars from Maven Central and clear errors when Spark cannot start).
"""
