"""Data-driven contract cases: tests/cases/contracts/check/*.yaml.

Each case holds a ``contract`` (inline), ``rows``, optionally the ``arrow`` types of
the batch's columns (default: the declared ones, in contract order) and ``now``, and
what must come out: the positions of the ``valid`` rows and, per ``invalid`` row, its
reasons as ``[rule, column, value]`` in order; optionally ``messages`` (a fragment per
reason), ``counts`` (rows per ``rule`` or ``column.rule``), ``owners`` (per
``column.rule``), ``schema_issues`` (``kind column policy``), or ``rejected`` (a
fragment of the BatchRejectedError raised instead).

Output-contract cases add ``references`` (per reference table, its ``arrow`` types and
``rows``), ``input_rows``, and the failed expectations expected in ``batch_failures``
and ``batch_warnings`` (each ``[expectation, column, observed]``; default: none).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dataplump.contracts import REASONS_TYPE, RULES, BatchRejectedError, Contract
from dataplump.contracts.spec import EXPECTATION_KINDS, TABLE_RULE_KINDS
from dataplump.errors import TerminalError
from tests.unit.contracts.helpers import CASES, batch, load_yaml, reference_tables

CHECK = sorted((CASES / "check").glob("*.yaml"))


def test_every_rule_has_a_case() -> None:
    texts = "\n".join(case.read_text(encoding="utf-8") for case in CHECK)
    for rule in RULES:
        assert f"{rule.name}:" in texts, f"no case uses rule `{rule.name}`"
    for kind in (*TABLE_RULE_KINDS, *EXPECTATION_KINDS):
        assert kind in texts, f"no case uses `{kind}`"
    for on_fail in ("reject_batch", "warn"):
        assert f"on_fail: {on_fail}" in texts, f"no case for on_fail: {on_fail}"
    for key in ("on_unknown_column", "on_missing_column", "on_type_drift"):
        for policy in ("pass", "reject_row", "reject_batch"):
            assert f"{key}: {policy}" in texts, f"no case for {key}: {policy}"


@pytest.mark.parametrize("path", CHECK, ids=lambda p: p.stem)
def test_case(path: Path) -> None:
    case: dict[str, Any] = load_yaml(path)
    contract = Contract.from_config(path.stem, case["contract"])
    table = batch(case, contract)
    now = datetime.fromisoformat(case["now"]) if "now" in case else None
    references = reference_tables(case)
    input_rows = case.get("input_rows")
    if "rejected" in case:
        with pytest.raises(BatchRejectedError) as caught:
            contract.check(table, now=now, references=references, input_rows=input_rows)
        assert isinstance(caught.value, TerminalError)
        assert case["rejected"] in str(caught.value)
        assert caught.value.contract_hash == contract.content_hash
        assert caught.value.contract_version == contract.version
        return
    result = contract.check(table, now=now, references=references, input_rows=input_rows)
    for key in ("batch_failures", "batch_warnings"):
        failed = [[f.expectation, f.column, f.observed] for f in getattr(result, key)]
        assert failed == (case.get(key) or []), key
    if result.batch_failures:
        assert result.valid.num_rows == 0
        assert result.num_invalid == table.num_rows

    # Valid and invalid rows: the original rows, in order, same schema.
    expected_invalid = {int(k): v for k, v in (case.get("invalid") or {}).items()}
    assert result.invalid_rows.to_pylist() == sorted(expected_invalid)
    assert [i for i, ok in enumerate(result.valid_mask.to_pylist()) if ok] == case["valid"]
    assert result.valid.schema == table.schema
    assert result.invalid.schema == table.schema
    # (compared as text, where a NaN equals itself)
    expected_valid = table.take(pa.array(case["valid"], pa.int64()))
    assert repr(result.valid.to_pylist()) == repr(expected_valid.to_pylist())
    assert repr(result.invalid.to_pylist()) == repr(table.take(result.invalid_rows).to_pylist())

    # Every reason of every invalid row, in check order.
    assert result.reasons.type == REASONS_TYPE
    got = {
        row: [[r["rule"], r["column"], r["value"]] for r in reasons]
        for row, reasons in result.rejections()
    }
    assert got == {row: [list(r) for r in reasons] for row, reasons in expected_invalid.items()}
    for row, fragments in (case.get("messages") or {}).items():
        messages = [r["message"] for r in dict(result.rejections())[int(row)]]
        for message, fragment in zip(messages, fragments, strict=True):
            assert fragment in message, (message, fragment)

    # Counts, owners, schema issues, version.
    counts = {
        (v.rule if v.column is None else f"{v.column}.{v.rule}"): v.rows for v in result.violations
    }
    if "counts" in case:
        assert counts == case["counts"]
    for key, owner in (case.get("owners") or {}).items():
        column, _, rule = key.rpartition(".")
        found = [
            v.owner for v in result.violations if v.rule == rule and (v.column or "") == column
        ]
        assert found == [owner], (key, result.violations)
    if "schema_issues" in case:
        issues = [f"{i.kind} {i.column} {i.policy}" for i in result.schema_issues]
        assert issues == case["schema_issues"]
    assert result.contract_version == contract.version
    assert result.contract_hash == contract.content_hash
    assert result.num_rows == table.num_rows
