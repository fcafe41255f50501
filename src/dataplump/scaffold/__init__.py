"""``dataplump init``: scaffold a working pipeline folder from an existing database.

    >>> # result = scaffold("postgresql+psycopg://shop:pw@db/shop", Path("shop"))
    >>> # result.written, result.plan.password_variable
    >>> # ([PosixPath('shop/contracts/customers.yaml'), ...], 'SHOP_DB_PASSWORD')

Modules: :mod:`~dataplump.scaffold.reflect` (the database: tables, keys, foreign keys,
columns as extraction types them, a sample), :mod:`~dataplump.scaffold.propose` (a
table's mode, cursor and contract, verified on the sample),
:mod:`~dataplump.scaffold.render` (file texts, names quoted, no password written),
:mod:`~dataplump.scaffold.plan` (the folder's files) and :mod:`~dataplump.scaffold.write`
(writing without overwriting, and the final check). ``docs/init.md`` is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dataplump.scaffold.errors import ScaffoldError
from dataplump.scaffold.plan import SAMPLE_ROWS, Plan, plan_folder
from dataplump.scaffold.write import check_folder, write_plan

__all__ = ["SAMPLE_ROWS", "Plan", "ScaffoldError", "ScaffoldResult", "scaffold"]


@dataclass(frozen=True)
class ScaffoldResult:
    """What :func:`scaffold` did."""

    plan: Plan
    written: list[Path]
    """The files written, in the order written."""
    problems: list[str]
    """What ``dataplump config check --steps`` reports for the folder (empty: it passes)."""


def scaffold(
    url: str,
    folder: Path,
    *,
    tables: list[str] | None = None,
    name: str | None = None,
    schema: str | None = None,
    password_env: str | None = None,
    force: bool = False,
    sample_rows: int = SAMPLE_ROWS,
) -> ScaffoldResult:
    """Reflect the database at ``url`` and write a pipeline folder for it in ``folder``.

    Raises :class:`ScaffoldError` when the database cannot be read, a table named does
    not exist, or a file exists already and ``force`` is false.
    """
    plan = plan_folder(
        url,
        tables=tables,
        name=name,
        schema=schema,
        password_env=password_env,
        sample_rows=sample_rows,
    )
    written = write_plan(plan, folder, force=force)
    return ScaffoldResult(plan, written, check_folder(plan, folder, url))
