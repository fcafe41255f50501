"""Reading curated and ops tables back, for any sink kind: what ``status``, the ledger,
the dashboard and reports query.

Readers take no writer lock, so they work while a loader writes: a Delta reader sees the
last committed version, a Parquet reader the files of the last manifest, a PostgreSQL
reader the last committed transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from dataplump.sinks._lake import table_place
from dataplump.sinks.base import SinkError

if TYPE_CHECKING:
    from dataplump.config.models import SinkConfig


def read_table(
    config: SinkConfig,
    table: str,
    columns: list[str] | None = None,
    where: Callable[[list[str]], pl.Expr | None] | None = None,
) -> pl.DataFrame:
    """The committed rows of ``table`` in the sink (``columns`` only, if given).

    ``where(column names)`` gives a filter over those columns (None: every row); a Delta
    table is filtered as it is scanned (the rows left out are never held), the other
    kinds after reading. A table the sink does not hold yet reads as an empty frame
    without columns; a sink that cannot be read raises :class:`SinkError` with one line
    saying why.
    """
    if config.kind == "delta":
        return _read_delta(config, table, columns, where=where)
    if config.kind == "parquet":
        from dataplump.sinks.parquet import read_parquet_table

        place = table_place(config, table)
        data = read_parquet_table(place.uri, columns if columns else None, s3=config.s3)
        frame = pl.DataFrame() if data.num_columns == 0 else pl.from_arrow(data)
        assert isinstance(frame, pl.DataFrame)
    elif config.kind == "postgres":
        frame = _read_postgres(config, table, columns)
    else:
        raise SinkError(f"cannot read a `{config.kind}` sink")
    condition = where(frame.columns) if where is not None and frame.width else None
    return frame if condition is None else frame.filter(condition)


def count_rows(
    config: SinkConfig, table: str, by: list[str] | None = None
) -> dict[tuple[Any, ...], int]:
    """Rows of ``table`` in the sink, counted per distinct value of the ``by`` columns
    (``{(): n}`` without ``by``; an empty dict for a table the sink does not hold)."""
    by = by or []
    if config.kind == "postgres":
        return _count_postgres(config, table, by)
    if config.kind == "delta":
        frame = _read_delta(config, table, by, count_only=not by)
    else:
        frame = read_table(config, table, by or None)
    if frame.width == 0:
        return {}
    if not by:
        return {(): frame.item() if frame.columns == ["len"] else frame.height}
    counted = frame.group_by(by).len()
    return {tuple(row[:-1]): int(row[-1]) for row in counted.iter_rows()}


def _read_delta(
    config: SinkConfig,
    table: str,
    columns: list[str] | None,
    *,
    count_only: bool = False,
    where: Callable[[list[str]], pl.Expr | None] | None = None,
) -> pl.DataFrame:
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    place = table_place(config, table)
    try:
        stored = DeltaTable(place.uri, storage_options=place.storage_options)
    except TableNotFoundError:
        return pl.DataFrame()
    except (DeltaError, OSError) as error:
        raise SinkError(f"cannot read Delta table {place.uri}: {error}") from error
    names = pa.schema(stored.schema().to_arrow()).names
    wanted = [c for c in columns if c in names] if columns else names
    # polars reads the files itself: deltalake 1.6.6's to_pyarrow_table() can abort the
    # process at exit.
    scan = pl.scan_delta(place.uri, storage_options=place.storage_options)
    if count_only:
        return scan.select(pl.len()).collect()
    if where is not None and (condition := where(names)) is not None:
        scan = scan.filter(condition)
    frame = scan.select(wanted).collect()
    for column in columns or ():
        if column not in frame.columns:  # added to the config but not written yet
            frame = frame.with_columns(pl.lit(None).alias(column))
    return frame


def _read_postgres(config: SinkConfig, table: str, columns: list[str] | None) -> pl.DataFrame:
    from psycopg import sql

    def query(names: list[str], schema: str) -> sql.Composable:
        return sql.SQL("SELECT {} FROM {}.{}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in names),
            sql.Identifier(schema),
            sql.Identifier(table),
        )

    names, rows = _postgres(config, table, columns, query)
    return pl.DataFrame(rows, schema=names, orient="row") if names else pl.DataFrame()


def _count_postgres(config: SinkConfig, table: str, by: list[str]) -> dict[tuple[Any, ...], int]:
    from psycopg import sql

    def query(names: list[str], schema: str) -> sql.Composable:
        keys = sql.SQL(", ").join(sql.Identifier(c) for c in names)
        return sql.SQL("SELECT {}count(*) FROM {}.{}{}").format(
            sql.SQL("{}, ").format(keys) if names else sql.SQL(""),
            sql.Identifier(schema),
            sql.Identifier(table),
            sql.SQL(" GROUP BY {}").format(keys) if names else sql.SQL(""),
        )

    names, rows = _postgres(config, table, by, query, all_columns=False)
    if names is None:
        return {}
    return {tuple(row[:-1]): int(row[-1]) for row in rows}


def _postgres(
    config: SinkConfig,
    table: str,
    columns: list[str] | None,
    query: Callable[[list[str], str], Any],
    *,
    all_columns: bool = True,
) -> tuple[Any, list[tuple[Any, ...]]]:
    """Run ``query(columns present, schema)`` on the warehouse; (None, []) if no table."""
    import psycopg
    from sqlalchemy.engine import make_url

    from dataplump.sinks.postgres import connect

    assert config.url is not None
    schema = config.db_schema or "public"
    try:
        with connect(make_url(config.url.get_secret_value()), "dataplump reader") as conn:
            found = conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table),
            ).fetchall()
            if not found:
                return None, []
            present = [row[0] for row in found]
            if columns:
                names = [c for c in columns if c in present]
            else:
                names = present if all_columns else []
            return names, conn.execute(query(names, schema)).fetchall()
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SinkError(f"cannot read warehouse table `{schema}.{table}`: {first}") from None


__all__ = ["read_table"]
