"""The one table of a benchmark run, and its three outputs: terminal, JSON, Markdown.

Pure functions of a list of :class:`Result`, so they are unit-tested without a
broker or a database. The ratio is rows/s against DataPlump's in the same scenario
(above 1: the peer is faster).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
HEADERS = ("tool", "scenario", "rows", "seconds", "rows/s", "peak RSS", "ratio")


@dataclass(frozen=True)
class Result:
    """One candidate's run: what it moved, how long it took, its own peak RSS."""

    tool: str
    scenario: int
    rows: int
    seconds: float
    peak_rss_mb: float
    invalid: int = 0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def ratio(result: Result, results: Sequence[Result]) -> float | None:
    """rows/s of ``result`` over DataPlump's in its scenario; None when no DataPlump row."""
    base = [r for r in results if r.scenario == result.scenario and r.tool == "dataplump"]
    if not base or base[0].rate == 0:
        return None
    return result.rate / base[0].rate


def rows_of(results: Sequence[Result]) -> list[tuple[str, ...]]:
    """The table's cells as text, in the order of ``HEADERS``."""
    return [
        (
            r.tool,
            str(r.scenario),
            f"{r.rows:,}",
            f"{r.seconds:.2f}",
            f"{r.rate:,.0f}",
            f"{r.peak_rss_mb:.0f} MB",
            "-" if (x := ratio(r, results)) is None else f"{x:.2f}",
        )
        for r in results
    ]


def text_table(results: Sequence[Result]) -> str:
    """Aligned columns for the terminal: text left, numbers right."""
    cells = [HEADERS, *rows_of(results)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    lines = []
    for row in cells:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def markdown_table(results: Sequence[Result]) -> str:
    """A GitHub Markdown table, numbers right-aligned."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "| --- |" + " ---: |" * (len(HEADERS) - 1),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows_of(results)]
    return "\n".join(lines)


def to_json(results: Sequence[Result], meta: dict[str, object]) -> str:
    """The results with their rate and ratio, and the run's settings under ``meta``."""
    return json.dumps(
        {
            "meta": meta,
            "results": [
                {**asdict(r), "rows_per_s": r.rate, "ratio": ratio(r, results)} for r in results
            ],
        },
        indent=2,
    )


def from_json(text: str) -> list[Result]:
    """The results of a JSON file written by :func:`to_json`."""
    return [
        Result(
            tool=r["tool"],
            scenario=r["scenario"],
            rows=r["rows"],
            seconds=r["seconds"],
            peak_rss_mb=r["peak_rss_mb"],
            invalid=r.get("invalid", 0),
        )
        for r in json.loads(text)["results"]
    ]


def replace_between_markers(document: str, body: str) -> str:
    """``document`` with the text between BEGIN and END replaced by ``body``.

    The prose around the markers stays as written; a document without the markers
    gets them appended, so the first run creates the section.
    """
    block = f"{BEGIN}\n{body.strip()}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip() + "\n\n" + block + "\n"


def chart_svg(results: Sequence[Result]) -> str:
    """A bar chart of rows/s per tool, one panel per scenario (altair + vl-convert)."""
    import altair as alt
    import vl_convert as vlc

    data = alt.Data(  # type: ignore[no-untyped-call]
        values=[
            {"tool": r.tool, "scenario": f"scenario {r.scenario}", "rows_per_s": r.rate}
            for r in results
        ]
    )
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("rows_per_s:Q", title="rows/s"),
            y=alt.Y("tool:N", title=None),
            row=alt.Row("scenario:N", title=None),
        )
        .properties(width=420)
        .resolve_scale(y="independent")
    )
    return str(vlc.vegalite_to_svg(chart.to_json()))


def write_docs(doc: Path, results: Sequence[Result], note: str, chart: Path | None) -> None:
    """Put the table (and a link to the chart) between the markers of ``doc``."""
    body = note.strip() + "\n\n" + markdown_table(results)
    if chart is not None:
        body += f"\n\n![rows/s per tool]({chart.name})"
    doc.write_text(replace_between_markers(doc.read_text() if doc.exists() else "", body))
