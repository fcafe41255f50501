"""Plan a pipeline folder: reflect the database, propose and verify each table's contract,
and render every file's text. Nothing is written here (see :mod:`.write`).

The folder ``init`` plans::

    DIR/dataplump.yaml               the pipeline file, every section explained
    DIR/contracts/<table>.yaml       one contract per table
    DIR/contracts/<table>.output.yaml   foreign keys as relationships rules (if any)
    DIR/steps/<table>.py             the pandas step of the example table
    DIR/lake/                        the Delta lake (created by the first load)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dataplump.config.models import masked_url as hide_credentials
from dataplump.scaffold import render
from dataplump.scaffold.errors import ScaffoldError
from dataplump.scaffold.propose import TableProposal, propose, reference_name, verify
from dataplump.scaffold.reflect import ReflectedTable, Skipped, reflect_database

__all__ = ["SAMPLE_ROWS", "Plan", "default_name", "password_variable", "plan_folder"]

SAMPLE_ROWS = 10_000
"""Rows of each table read to propose and verify rules."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


@dataclass
class Plan:
    """The files of a pipeline folder, by path relative to it, and what was found."""

    name: str
    files: dict[PurePosixPath, str]
    proposals: list[TableProposal]
    skipped: list[Skipped]
    password_variable: str | None
    """The variable holding the source password (None: the URL has no password)."""
    example_table: str | None
    dropped: list[str] = field(default_factory=list)
    """Rules left out because sampled rows break them (``table: ...``)."""


def default_name(url: str) -> str:
    """A pipeline name from the database's name (the file's stem for SQLite)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite":
        database = PurePosixPath(database).stem
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", database).strip("_-")[:100]
    return name if _NAME.fullmatch(name) else "pipeline"


def password_variable(name: str) -> str:
    """``<NAME>_DB_PASSWORD``: the environment variable the source password is read from."""
    stem = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "SOURCE"
    if stem[0].isdigit():
        stem = "DP_" + stem
    return f"{stem}_DB_PASSWORD"


def _slug(table: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9_]+", "_", table.lower()).strip("_") or "table"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}_{n}", n + 1
    taken.add(slug)
    return slug


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate.lower() in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate.lower())
    return candidate


def _example(proposal: TableProposal, slug: str) -> render.Example | None:
    """A SQL and a pandas step for ``proposal``'s table, on non-key declared columns."""
    key = proposal.table.primary_key
    columns = [c for c in proposal.table.columns if c.name not in key]
    declared = {c.name for c in proposal.columns if c.spec is not None}
    columns = [c for c in columns if c.name in declared]
    if not columns:
        return None
    taken = {c.name.lower() for c in proposal.table.columns}
    texts = [c for c in columns if c.arrow_type is not None and str(c.arrow_type) == "string"]
    if texts:
        source = texts[0].name
        added = _unique(f"{source}_length", taken)
        expression = f"length({render.sql_name(source)})"
    else:
        source = columns[0].name
        added = _unique(f"{source}_text", taken)
        expression = f"CAST({render.sql_name(source)} AS VARCHAR)"
    sql = f"SELECT *, {expression} AS {render.sql_name(added)}\nFROM batch"
    nullable = [c for c in columns if c.nullable] or columns
    flagged = nullable[0].name
    missing = _unique(f"{flagged}_missing", taken)
    function = "add_columns"
    path = f"steps/{slug}.py"
    return render.Example(
        table=proposal.name,
        sql=sql,
        sql_column=added,
        pandas=f"{path}:{function}",
        pandas_column=missing,
        step_text=render.step_file(proposal.name, function, flagged, missing),
    )


def plan_folder(
    url: str,
    *,
    tables: list[str] | None = None,
    name: str | None = None,
    schema: str | None = None,
    password_env: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
) -> Plan:
    """Reflect the database at ``url`` and plan the pipeline folder's files."""
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        raise ScaffoldError(
            "--url is not a SQLAlchemy URL: expected e.g."
            " `postgresql+psycopg://user:password@host:5432/db`,"
            " `mysql+pymysql://user:password@host/db` or `sqlite:///file.db`"
        ) from None
    name = name or default_name(url)
    if not _NAME.fullmatch(name):
        raise ScaffoldError(
            f"pipeline name {name!r}: expected 1 to 100 letters, digits, `_` or `-`, starting"
            " with a letter or digit (it is part of Kafka topic names)"
        )
    variable = password_env or password_variable(name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        raise ScaffoldError(f"--password-env {variable!r} is not an environment variable name")
    reflected, skipped = reflect_database(url, schema, tables, sample_rows=sample_rows)
    if not reflected:
        reasons = "; ".join(f"`{s.name}`: {s.reason}" for s in skipped[:3])
        raise ScaffoldError(f"no table can be extracted as it is: {reasons}")
    references = _references(reflected)
    proposals = [propose(table, reflected, references) for table in reflected]
    dropped = [f"{p.name}: {line}" for p in proposals for line in verify(p)]
    used = {
        rule["relationships"]["to"] for p in proposals for rule, _ in p.relationships
    }  # parents some foreign key is checked against
    references = {ref: table for table, ref in references.items() if ref in used}
    files: dict[PurePosixPath, str] = {}
    slugs: set[str] = set()
    contract_paths: dict[str, str] = {}
    output_paths: dict[str, str] = {}
    example: render.Example | None = None
    for proposal in proposals:
        slug = _slug(proposal.name, slugs)
        path = f"contracts/{slug}.yaml"
        contract_paths[proposal.name] = path
        files[PurePosixPath(path)] = render.contract_file(proposal, pipeline=name)
        output: dict[str, Any] | None = proposal.output_contract()
        if output is not None:
            out_path = f"contracts/{slug}.output.yaml"
            output_paths[proposal.name] = out_path
            files[PurePosixPath(out_path)] = render.output_contract_file(proposal, output)
        if example is None:
            example = _example(proposal, slug)
            if example is not None:
                files[PurePosixPath(example.pandas.split(":")[0])] = example.step_text
    text, had_password = render.without_password(url, variable)
    files[PurePosixPath("dataplump.yaml")] = render.pipeline_file(
        name=name,
        url_text=text,
        password_variable=variable if had_password else None,
        masked_url=hide_credentials(make_url(url)),
        schema=schema,
        proposals=proposals,
        contract_paths=contract_paths,
        output_paths=output_paths,
        references=references,
        example=example,
        skipped=[(s.name, s.reason) for s in skipped],
    )
    return Plan(
        name=name,
        files=files,
        proposals=proposals,
        skipped=skipped,
        password_variable=variable if had_password else None,
        example_table=example.table if example else None,
        dropped=dropped,
    )


def _references(tables: list[ReflectedTable]) -> dict[str, str]:
    """Parent table -> its reference name, for every table some foreign key names."""
    parents = sorted({fk.parent for t in tables for fk in t.foreign_keys})
    names = {t.name for t in tables}
    taken: set[str] = set()
    return {parent: reference_name(parent, taken) for parent in parents if parent in names}
