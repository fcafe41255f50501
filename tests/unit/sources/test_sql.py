"""SQL generation: keyset predicates, SELECT statements, quoting of odd identifiers."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from dataplump.sources.base import keyset_predicate, select_statement


def test_row_value_comparison() -> None:
    assert keyset_predicate(["c", "a", "b"], ["?", "?", "?"], row_values=True) == (
        "(c, a, b) > (?, ?, ?)"
    )


def test_single_column_needs_no_row_value() -> None:
    assert keyset_predicate(["id"], ["5"], row_values=True) == "id > 5"
    assert keyset_predicate(["id"], ["5"], row_values=False) == "id > 5"


def test_expanded_comparison_leads_with_a_range_on_the_first_column() -> None:
    assert keyset_predicate(["c", "a", "b"], ["1", "2", "3"], row_values=False) == (
        "c >= 1 AND (c > 1 OR (c = 1 AND (a > 2 OR (a = 2 AND b > 3))))"
    )


def test_expanded_comparison_means_the_same_as_row_values() -> None:
    """Checked on every triple of small numbers against Python's tuple order."""
    columns, values = ["a", "b", "c"], ["x", "y", "z"]
    sql = keyset_predicate(columns, values, row_values=False)
    expression = sql.replace("AND", "and").replace("OR", "or").replace(" = ", " == ")
    expression = expression.replace(">=", ">=")
    grid = range(3)
    for row in [(a, b, c) for a in grid for b in grid for c in grid]:
        for after in [(a, b, c) for a in grid for b in grid for c in grid]:
            env = dict(zip(columns, row, strict=True)) | dict(zip(values, after, strict=True))
            assert eval(expression, {}, env) == (row > after), (row, after)  # noqa: S307


def test_a_capped_watermark_compares_only_the_cursor() -> None:
    assert keyset_predicate(["c", "id"], ["?"], row_values=True) == "c > ?"
    assert keyset_predicate(["c", "id"], ["1"], row_values=False) == "c > 1"


def test_no_values_is_a_bug() -> None:
    with pytest.raises(ValueError, match="needs 1 to"):
        keyset_predicate(["a"], [], row_values=True)
    with pytest.raises(ValueError, match="needs 1 to"):
        keyset_predicate(["a"], ["1", "2"], row_values=True)


def test_select_statement() -> None:
    assert select_statement(select=["a", "b"], table="t", where=[], order_by=["a"]) == (
        "SELECT a, b FROM t ORDER BY a"
    )
    assert select_statement(
        select=["a"], table="t", where=["a > ?", "a <= ?"], order_by=["a", "b"]
    ) == ("SELECT a FROM t WHERE a > ? AND a <= ? ORDER BY a, b")


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (postgresql.dialect(), '"Order ""Items"" `x`"'),  # type: ignore[no-untyped-call]
        (mysql.dialect(), '`Order "Items" ``x```'),
        (sqlite.dialect(), '"Order ""Items"" `x`"'),
    ],
)
def test_identifiers_are_quoted_by_the_dialect(dialect: Dialect, expected: str) -> None:
    """What the sources use for every table and column name from the config."""
    quote = dialect.identifier_preparer.quote_identifier
    assert quote('Order "Items" `x`') == expected
