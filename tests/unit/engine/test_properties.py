"""Properties: text steps keep the row count; lineage indexes come from the input."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.engine.helpers import transform

TEXT = st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=40)
TEXT_STEPS = transform({"trim": "s"}, {"lowercase": "s"}, {"uppercase": "s"}, {"titlecase": "s"})
MIXED = transform(
    {"cast": {"n": "int16"}},
    {"drop_null": "s"},
    {"dedupe": {"key": "k", "newest_by": "n"}},
    {"sql": "SELECT * FROM batch WHERE n % 3 <> 0"},
)


@settings(max_examples=60, deadline=None)
@given(TEXT)
def test_text_steps_never_change_the_row_count(values: list[str | None]) -> None:
    result = TEXT_STEPS.apply(pa.table({"s": pa.array(values, pa.string())}))
    assert result.output.num_rows == len(values)
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == list(range(len(values)))
    assert [v is None for v in result.output["s"].to_pylist()] == [v is None for v in values]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["1", "x", "70000", "-3", "12"])),
            st.one_of(st.none(), st.text(max_size=3)),
            st.integers(0, 5),
        ),
        max_size=40,
    )
)
def test_lineage_is_a_subset_of_input_rows_and_every_row_is_accounted_for(
    rows: list[tuple[str | None, str | None, int]],
) -> None:
    batch = pa.table(
        {
            "n": pa.array([r[0] for r in rows], pa.string()),
            "s": pa.array([r[1] for r in rows], pa.string()),
            "k": pa.array([r[2] for r in rows], pa.int64()),
        }
    )
    result = MIXED.apply(batch)
    assert result.source_rows is not None
    kept = result.source_rows.to_pylist()
    failed = result.row_failures["input_row"].to_pylist()
    assert set(kept) <= set(range(len(rows)))
    assert len(set(kept)) == len(kept)
    assert not set(kept) & set(failed)
    assert sum(result.filtered.values()) + len(failed) <= len(rows) - len(kept)
    for i, row in zip(kept, result.output.to_pylist(), strict=True):
        assert row["s"] == rows[i][1]
        assert row["k"] == rows[i][2]
