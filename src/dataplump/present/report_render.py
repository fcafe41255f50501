"""Lay a :class:`~dataplump.present.report.Report` out as HTML, PDF or Markdown.

One Jinja template per kind of text (``templates/report.html``, ``templates/report.md``),
and one stylesheet (``templates/report.css``) with the screen and the print rules:

- **HTML**: one self-contained file — the CSS inline, each chart an inline ``<svg>``
  (vl-convert), no script, and no URL outside the file;
- **PDF**: WeasyPrint prints the very same HTML on A4 (``@page``): "page N of M" at the
  foot of each page, headings kept with what follows them, table rows and charts never
  split, the charts from a new page on;
- **Markdown**: tables of the figures, reasons and alerts; each chart a PNG in
  ``<name>_files/`` beside the ``.md``, linked relatively.

Every text is scrubbed of the pipeline's secrets before it is written
(:func:`dataplump.present.report.scrub`), and written to a temporary file renamed into
place, so a reader never sees half a report.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from dataplump.present.report import FIGURES, Report, ReportInputError, scrub

TEMPLATES = Path(__file__).parent / "templates"
"""The dashboard's template folder: the report's templates are ``report.*`` in it."""
CHART_WIDTH = 660
"""Pixels a chart is drawn at (the text width of an A4 page at 96 dpi, about)."""

NONE = "\u2013"
"""What a missing number shows (an en dash)."""

METHOD = (
    "Period figures count rows by time: *extracted* adds up the extract runs (`_runs`)"
    " that ended in the period; *loaded* counts the curated table's rows extracted in the"
    " period (`_dp_extracted_at`; in a merge table a row counts once, at its newest"
    " version); *invalid* and *failed* count the records the dead-letter (`_dlq`) and"
    " failed (`_failed`) ops tables kept in the period (`kafka_timestamp`).",
    "The change is against the period of the same length just before; *new* means the"
    " previous period had none.",
    "*Quarantined* is invalid + failed, of the rows extracted in the period.",
    "The ledger is cumulative over every run, read from Kafka when the report was made:"
    " read = loaded + dead-letter + failed + filtered + in flight; its gap must be 0.",
    "Reasons: one record counts under each rule it broke; the share is of the table's"
    " rejected records in the period.",
    "Charts are the pipeline's declared charts over the whole curated tables (not only"
    " the period), as the dashboard draws them.",
)


def _num(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{value:.1%}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "no rows"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _time(value: str | datetime | None) -> str:
    if value is None:
        return NONE
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _code(text: str) -> Markup:
    """Text with `code` spans as ``<code>`` (HTML-escaped)."""
    parts = str(text).split("`")
    return Markup("").join(
        Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts)
    )


def _plain(text: str) -> str:
    """Text without the backticks of `code` spans."""
    return str(text).replace("`", "")


def _cell(value: Any) -> str:
    """A Markdown table cell: no line breaks, ``|`` escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters |= {
        "num": _num,
        "pct": _pct,
        "age": _age,
        "time": _time,
        "code": _code,
        "plain": _plain,
        "cell": _cell,
    }
    env.globals |= {"FIGURES": FIGURES, "METHOD": METHOD}
    return env


_ENV: Environment | None = None


def environment() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


_SVG_ID = re.compile(r'\bid="([^"]+)"')


def _isolate(svg: str, prefix: str) -> str:
    """``svg`` with its ids (and the references to them) prefixed: several inline SVGs in
    one page must not share an id."""
    ids = set(_SVG_ID.findall(svg))
    for name in sorted(ids, key=len, reverse=True):
        svg = svg.replace(f'id="{name}"', f'id="{prefix}{name}"')
        svg = svg.replace(f"url(#{name})", f"url(#{prefix}{name})")
        svg = svg.replace(f'href="#{name}"', f'href="#{prefix}{name}"')
    return svg


def _drawn(report: Report, draw: Callable[[dict[str, Any], int], Any]) -> list[dict[str, Any]]:
    """The report's charts, each with ``image``: ``draw(spec, index)`` (None for a chart
    whose query failed; a failed drawing becomes the chart's error)."""
    found = []
    for i, chart in enumerate(report.charts):
        entry = dict(chart, image=None)
        if chart["spec"] is not None:
            spec = {k: v for k, v in chart["spec"].items() if k != "title"}  # the heading
            try:
                entry["image"] = draw(spec, i)
            except Exception as exc:  # vl-convert raises plain ValueError/RuntimeError
                entry["error"] = f"chart `{chart['name']}` could not be drawn: {exc}"
        found.append(entry)
    return found


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (charts as inline SVG)."""
    from dataplump.present.charts import to_svg

    def draw(spec: dict[str, Any], i: int) -> Markup:
        svg = to_svg(spec, CHART_WIDTH)
        return Markup(_isolate(svg, f"c{i}-"))  # noqa: S704 - vl-convert's own SVG output

    charts = _drawn(report, draw)
    return environment().get_template("report.html").render(r=report, charts=charts)


def render_pdf(html: str) -> bytes:
    """The report page printed on A4 by WeasyPrint (no URL is fetched: the page has none,
    and any but a ``data:`` URL would be refused)."""
    try:
        import weasyprint  # type: ignore[import-untyped]
    except OSError as exc:  # Pango missing: WeasyPrint loads it when imported
        raise ReportInputError(
            f"PDF reports need Pango ({exc}); install Debian's libpango-1.0-0 and"
            " libpangoft2-1.0-0 (`bash scripts/setup.sh` does)"
        ) from None

    from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

    offline = URLFetcher(allowed_protocols=("data",))  # nothing from the network or disk
    pdf: bytes = weasyprint.HTML(string=html, url_fetcher=offline).write_pdf()
    return pdf


def render_markdown(report: Report, files: Path, link: str) -> str:
    """The report as Markdown; each chart written as ``files/<chart>.png`` and linked as
    ``link/<chart>.png``."""
    from dataplump.present.charts import to_png

    def draw(spec: dict[str, Any], i: int) -> str:
        files.mkdir(parents=True, exist_ok=True)
        name = f"{report.charts[i]['name']}.png"
        _write_atomic(files / name, to_png(spec, CHART_WIDTH))
        return f"{link}/{quote(name)}"

    charts = _drawn(report, draw)
    return environment().get_template("report.md").render(r=report, charts=charts)


def _write_atomic(target: Path, content: bytes) -> None:
    """Write ``content`` to a temporary file beside ``target``, then rename it into place."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        Path(name).chmod(0o644)
        Path(name).replace(target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def render(report: Report, fmt: str, secrets: Iterable[str], target: Path) -> bytes:
    """The report's bytes in ``fmt`` (Markdown also writes its charts beside ``target``)."""
    secrets = list(secrets)
    if fmt == "md":
        files = target.parent / f"{target.stem}_files"
        text = render_markdown(report, files, quote(files.name))
        return scrub(text, secrets).encode()
    html = scrub(render_html(report), secrets)
    return html.encode() if fmt == "html" else render_pdf(html)


def write(report: Report, target: Path, fmt: str, secrets: Iterable[str]) -> None:
    """Render ``report`` as ``fmt`` into ``target`` (atomically)."""
    try:
        _write_atomic(target, render(report, fmt, secrets, target))
    except PermissionError as exc:
        raise ReportInputError(f"cannot write the report to {target}: {exc.strerror}") from None
    except OSError as exc:
        raise ReportInputError(f"cannot write the report to {target}: {exc.strerror}") from None


__all__ = ["render", "render_html", "render_markdown", "render_pdf", "write"]
