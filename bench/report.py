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
LATENCY_HEADERS = ("p50", "p99")
"""Extra columns, shown only when some result has a latency (scenario 5)."""


@dataclass(frozen=True)
class Result:
    """One candidate's run: what it moved, how long it took, its own peak RSS."""

    tool: str
    scenario: int
    rows: int
    seconds: float
    peak_rss_mb: float
    invalid: int = 0
    p50_s: float | None = None
    """Scenario 5: median seconds from a source change to the row in the curated table."""
    p99_s: float | None = None
    """Scenario 5: the 99th percentile of the same."""
    own_ratio: float | None = None
    """Shown as the ratio instead of rows/s over DataPlump's; scenario 4 uses it for a
    stage's peak RSS over the same stage's at the smaller size (1.0: flat)."""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def ratio(result: Result, results: Sequence[Result]) -> float | None:
    """rows/s of ``result`` over DataPlump's in its scenario; None when no DataPlump row.

    A result that carries its own ratio (``own_ratio``, scenario 4) keeps it.
    """
    if result.own_ratio is not None:
        return result.own_ratio
    base = [r for r in results if r.scenario == result.scenario and r.tool == "dataplump"]
    if not base or base[0].rate == 0:
        return None
    return result.rate / base[0].rate


def headers_of(results: Sequence[Result]) -> tuple[str, ...]:
    """``HEADERS``, and the latency columns when any result has a latency."""
    if any(r.p50_s is not None for r in results):
        return HEADERS + LATENCY_HEADERS
    return HEADERS


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def rows_of(results: Sequence[Result]) -> list[tuple[str, ...]]:
    """The table's cells as text, in the order of :func:`headers_of`."""
    latency = len(headers_of(results)) > len(HEADERS)
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
        + ((_seconds(r.p50_s), _seconds(r.p99_s)) if latency else ())
        for r in results
    ]


def text_table(results: Sequence[Result]) -> str:
    """Aligned columns for the terminal: text left, numbers right."""
    headers = headers_of(results)
    cells = [headers, *rows_of(results)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
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
    headers = headers_of(results)
    lines = [
        "| " + " | ".join(headers) + " |",
        "| --- |" + " ---: |" * (len(headers) - 1),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows_of(results)]
    return "\n".join(lines)


_OPTIONAL = ("p50_s", "p99_s", "own_ratio")


def to_json(results: Sequence[Result], meta: dict[str, object]) -> str:
    """The results with their rate and ratio, and the run's settings under ``meta``.

    The optional fields (latency, own ratio) are written only when set, so scenarios
    1 and 2 keep their shape.
    """
    return json.dumps(
        {
            "meta": meta,
            "results": [
                {
                    **{k: v for k, v in asdict(r).items() if v is not None or k not in _OPTIONAL},
                    "rows_per_s": r.rate,
                    "ratio": ratio(r, results),
                }
                for r in results
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
            **{k: r[k] for k in _OPTIONAL if r.get(k) is not None},
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
    """A bar chart of rows/s per tool, one panel per scenario (altair + vl-convert).

    Results measured for something else than throughput (memory, latency: those with
    an own ratio or a latency) are left out.
    """
    import altair as alt
    import vl_convert as vlc

    data = alt.Data(  # type: ignore[no-untyped-call]
        values=[
            {"tool": r.tool, "scenario": f"scenario {r.scenario}", "rows_per_s": r.rate}
            for r in results
            if r.own_ratio is None and r.p50_s is None
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
