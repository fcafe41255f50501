"""The ``pandas`` and ``polars`` steps: a user function from a DataFrame to a DataFrame.

A function is named ``path/to/file.py:name`` (relative to the pipeline file) or
``package.module:name``; :func:`load_function` imports it once (a file is imported as a
module of its own, cached by path) and says in one line what is wrong when it cannot.

The batch goes in without copies where the libraries allow:

- pandas gets ``table.to_pandas(types_mapper=pandas.ArrowDtype)``: every column keeps its
  Arrow type and memory (``decimal128(10,2)[pyarrow]``, ``timestamp[us, tz=UTC][pyarrow]``),
  so decimals and timestamps stay exact (the default ``to_pandas`` makes decimals Python
  ``Decimal`` objects and dates ``object``). The lineage is the DataFrame's index, named
  ``__dp_row``: filtering and sorting keep it; ``reset_index`` or a ``merge`` lose it.
- polars gets ``polars.from_arrow(table)`` (zero-copy) with the lineage as the column
  ``__dp_row``; keep it to keep the lineage. A ``LazyFrame`` result is collected.

The result comes back with ``pyarrow.Table.from_pandas`` / ``DataFrame.to_arrow`` and
its large and view string types are made plain ``string`` (and ``binary``) again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataplump.engine.builtin import ROW, StepError
from dataplump.engine.errors import StepConfigError
from dataplump.engine.spec import FunctionRef, PandasStep, PolarsStep

UserFunction = Callable[[Any], Any]


class ImportProblem(Exception):
    """A user function cannot be imported; the message is one line."""


def load_function(ref: FunctionRef) -> UserFunction:
    """Import the function ``ref`` names; :class:`ImportProblem` says why it cannot be."""
    if ref.file is not None:
        where = f"`{ref.text.rsplit(':', 1)[0]}`"
        module = _import_file(ref.file, where)
    else:
        where = f"module `{ref.module}`"
        try:
            module = importlib.import_module(str(ref.module))
        except ModuleNotFoundError as exc:
            raise ImportProblem(
                f"no module `{exc.name}` (is it installed, or on PYTHONPATH?)"
            ) from None
        except Exception as exc:  # the user's module raised while importing
            raise ImportProblem(f"importing {where} raised {_exception_line(exc)}") from None
    function = getattr(module, ref.name, None)
    if function is None:
        names = [n for n, v in vars(module).items() if inspect.isfunction(v) and n[0] != "_"]
        close = get_close_matches(ref.name, names, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        raise ImportProblem(
            f"no function `{ref.name}` in {where}; {hint}(functions: {', '.join(names) or '-'})"
        )
    if not callable(function):
        raise ImportProblem(
            f"`{ref.name}` in {where} is a {type(function).__name__}, not a function"
        )
    return function  # type: ignore[no-any-return]


def load_step_function(table: str, position: int, step: PandasStep | PolarsStep) -> UserFunction:
    """:func:`load_function` for step ``position`` (1-based) of ``table``: a
    :class:`StepConfigError` naming the table, the step and the function."""
    try:
        return load_function(step.function)
    except ImportProblem as exc:
        raise StepConfigError(
            f"table `{table}`, step {position} ({step.kind}): cannot import"
            f" `{step.function.text}`: {exc}"
        ) from None


def _import_file(file: Path, where: str) -> Any:
    path = file.resolve()
    if not path.is_file():
        raise ImportProblem(f"no such file {where} ({path})")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"dataplump_steps_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportProblem(f"{where} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file raised while importing
        del sys.modules[name]
        raise ImportProblem(f"importing {where} raised {_exception_line(exc)}") from None
    return module


def _exception_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _summary(exc: BaseException) -> str:
    """The traceback's frames outside DataPlump, innermost last, one per line."""
    frames = [
        f"{frame.filename}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}"
        for frame in traceback.extract_tb(exc.__traceback__)
        if "/dataplump/engine/" not in frame.filename.replace("\\", "/")
    ]
    return "\n".join([*frames[-8:], _exception_line(exc)])


def _call(function: UserFunction, frame: Any) -> Any:
    try:
        return function(frame)
    except Exception as exc:  # the user's code: reported as the step's failure
        raise StepError(f"raised {_exception_line(exc)}", _summary(exc)) from None


def plain_types(table: pa.Table) -> pa.Table:
    """Large and view string/binary columns as plain ``string``/``binary``."""
    fields = []
    for field in table.schema:
        t = field.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            field = field.with_type(pa.string())
        elif pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            field = field.with_type(pa.binary())
        fields.append(field)
    schema = pa.schema(fields)
    return table if schema.equals(table.schema) else table.cast(schema)


def _with_lineage(table: pa.Table, rows: Any) -> pa.Table:
    if ROW in table.column_names:
        table = table.drop_columns([ROW])
    return table if rows is None else table.append_column(ROW, pa.array(rows, pa.int64()))


def run_pandas(function: UserFunction, table: pa.Table) -> pa.Table:
    """Call a pandas function on ``table``; lineage from the ``__dp_row`` index (or column)."""
    import pandas as pd

    rows = table[ROW].to_numpy() if ROW in table.column_names else None
    data = table.drop_columns([ROW]) if rows is not None else table
    frame = data.to_pandas(types_mapper=pd.ArrowDtype)
    if rows is not None:
        frame.index = pd.Index(rows, name=ROW)
    result = _call(function, frame)
    if not isinstance(result, pd.DataFrame):
        raise StepError(f"returned {_kind(result)}, not a pandas.DataFrame")
    lineage = None
    if ROW in result.columns:
        lineage = result[ROW].to_numpy()
        result = result.drop(columns=[ROW])
    elif result.index.name == ROW and pd.api.types.is_integer_dtype(result.index.dtype):
        lineage = result.index.to_numpy()
    try:
        out = pa.Table.from_pandas(result, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise StepError(
            f"returned a DataFrame Arrow cannot read: {_exception_line(exc)}"
            " (give mixed-type columns one type)"
        ) from None
    return plain_types(_with_lineage(out.replace_schema_metadata(None), lineage))


def run_polars(function: UserFunction, table: pa.Table) -> pa.Table:
    """Call a polars function on ``table``; lineage from the ``__dp_row`` column."""
    import polars as pl

    frame = pl.from_arrow(table)
    result = _call(function, frame)
    if isinstance(result, pl.LazyFrame):
        try:
            result = result.collect()
        except pl.exceptions.PolarsError as exc:
            raise StepError(
                f"its LazyFrame failed: {_exception_line(exc)}", _summary(exc)
            ) from None
    if not isinstance(result, pl.DataFrame):
        raise StepError(f"returned {_kind(result)}, not a polars.DataFrame")
    out = result.to_arrow()
    if ROW in out.column_names and not pa.types.is_integer(out.schema.field(ROW).type):
        out = out.drop_columns([ROW])
    elif ROW in out.column_names:
        out = out.set_column(out.column_names.index(ROW), ROW, out[ROW].cast(pa.int64()))
    return plain_types(out)


def _kind(value: Any) -> str:
    if value is None:
        return "None (did it forget to `return df`?)"
    cls = type(value)
    name = cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
