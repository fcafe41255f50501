"""The dashboard web app (FastAPI): four pages and the JSON API behind them.

Pages: ``/`` (overview), ``/quality``, ``/data``, ``/alerts``; API under ``/api/``
(OpenAPI at ``/openapi.json``); the page's scripts under ``/assets/`` (served from the
package and vl-convert's bundle: no CDN). With ``present.auth_token`` set, every page and
API call needs the token — ``Authorization: Bearer <token>``, the ``X-DataPlump-Token``
header, ``?token=<token>`` or the session cookie ``/login`` sets; only ``/login``,
``/assets/*`` and ``/api/health`` are open. Every response carries a Content Security
Policy (scripts from the app only), ``X-Content-Type-Options: nosniff`` and
``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from dataplump import __version__
from dataplump.present import assets, charts, data
from dataplump.present.data import DashboardData, DashboardError, Snapshot

if TYPE_CHECKING:
    from dataplump.config import PipelineConfig

log = logging.getLogger(__name__)

COOKIE = "dataplump_session"
OPEN_PATHS = ("/login", "/assets/", "/api/health", "/favicon.ico")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; connect-src 'self'; font-src 'self';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Scripts only from the app (Vega runs its expression interpreter: no ``eval``);
vega-embed sets inline styles."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
TEMPLATES = Path(__file__).parent / "templates"
PAGE_ROWS = 50
"""Rejected records per page of the Data quality page."""


def session_value(token: str) -> str:
    """The session cookie's value for ``token`` (a keyed hash: the token itself never sits
    in the browser's cookie jar)."""
    return hmac.new(token.encode(), b"dataplump-dashboard-session", hashlib.sha256).hexdigest()


def _authorized(request: Request, token: str) -> bool:
    offered: list[str] = []
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        offered.append(header[7:].strip())
    offered.append(request.headers.get("x-dataplump-token", ""))
    offered.append(request.query_params.get("token", ""))
    if any(o and hmac.compare_digest(o.encode(), token.encode()) for o in offered):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
"""Host headers a dashboard bound to the loopback interface answers (DNS rebinding: a web
page elsewhere cannot point its own name at 127.0.0.1 and read the dashboard)."""


def create_app(
    config: PipelineConfig, source: DashboardData, *, allowed_hosts: tuple[str, ...] | None = None
) -> FastAPI:
    """The dashboard of ``config`` over ``source``'s snapshots; with ``allowed_hosts``,
    a request whose ``Host`` header names another host is refused (400)."""
    present = config.present
    token = present.auth_token.get_secret_value() if present.auth_token else None
    app = FastAPI(
        title=f"DataPlump dashboard · {config.name}",
        version=__version__,
        description=(
            "Read-only JSON API over the pipeline's curated and ops tables and its"
            " row-accounting ledger. With `present.auth_token` set, send"
            " `Authorization: Bearer <token>` (or `X-DataPlump-Token`). See docs/dashboard.md."
        ),
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN
        redoc_url=None,
    )
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True)
    )
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    charts_by_name = {c.name: c for c in present.charts}
    tables = list(config.tables)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if (
            token is not None
            and not path.startswith(OPEN_PATHS)
            and not _authorized(request, token)
        ):
            if path.startswith("/api/") or path == "/openapi.json":
                response: Response = JSONResponse(
                    {"detail": "missing or wrong token: send `Authorization: Bearer <token>`"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            else:
                target = path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        elif token is not None and "token" in request.query_params and request.method == "GET":
            # a link with ?token=: set the session and drop the token from the address bar
            rest = {k: v for k, v in request.query_params.items() if k != "token"}
            if path.startswith("/api/"):
                response = await _answer_or_500(request, call_next)
            else:
                response = RedirectResponse(path + (f"?{urlencode(rest)}" if rest else ""), 303)
                _set_session(response, token, request)
        else:
            response = await _answer_or_500(request, call_next)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if path.startswith("/api/") or path in ("/", "/quality", "/data", "/alerts"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def snapshot() -> Snapshot:
        return source.snapshot()

    def page(name: str, title: str, active: str, **values: Any) -> HTMLResponse:
        shot = values.pop("shot")
        html = env.get_template(name).render(
            title=title,
            active=active,
            pipeline=config.name,
            loaded_at=shot.loaded_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            refresh_seconds=present.refresh_seconds,
            auth=token is not None,
            **values,
        )
        return HTMLResponse(html)

    def overview_data(shot: Snapshot) -> dict[str, Any]:
        result: dict[str, Any] = shot.memo("overview", lambda: data.overview(shot, config))
        return result

    def declared(shot: Snapshot, name: str, over: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = shot.memo(("chart", name), lambda: _declared(shot, name, over))
        return result

    def _declared(shot: Snapshot, name: str, over: dict[str, Any]) -> dict[str, Any]:
        chart = charts_by_name[name]
        used = data.chart_tables(chart, tables)
        entry: dict[str, Any] = {
            "name": chart.name,
            "title": chart.title or chart.name,
            "kind": chart.kind,
            "tables": used,
            "description": chart.description,
            "warnings": data.warnings_for(used, over, present.quarantine_warning),
        }
        try:
            rows = data.chart_rows(shot, chart)
            entry |= {"rows": rows, "spec": charts.declared_chart(chart, rows), "error": None}
        except DashboardError as exc:
            entry |= {"rows": [], "spec": None, "error": str(exc)}
        return entry

    def profile_of(shot: Snapshot, table: str) -> dict[str, Any]:
        result: dict[str, Any] = shot.memo(("profile", table), lambda: data.profile(shot, table))
        return result

    def quality_of(shot: Snapshot) -> dict[str, Any]:
        result: dict[str, Any] = shot.memo("quality", lambda: data.quality(shot))
        return result

    # --- pages ------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview_page() -> HTMLResponse:
        shot = snapshot()
        over = overview_data(shot)
        specs = {
            "ledger": charts.ledger_chart(list(over["tables"].values())),
            "throughput": charts.throughput_chart(data.throughput(shot)),
        }
        return page("overview.html", "Overview", "/", shot=shot, o=over, specs=specs)

    @app.get("/quality", response_class=HTMLResponse, include_in_schema=False)
    def quality_page(
        table: str | None = None,
        store: str | None = None,
        rule: str | None = None,
        q: str | None = None,
        page_no: int = Query(0, alias="page", ge=0),
    ) -> HTMLResponse:
        shot = snapshot()
        found = quality_of(shot)
        specs = {
            "over_time": charts.rejects_over_time_chart(found["over_time"], found["bucket"]),
            "by_rule": charts.by_rule_chart(found["by_rule"]),
            "by_column": charts.by_column_chart(found["by_column"]),
        }
        filters = {
            "table": table or None,
            "store": store or None,
            "rule": rule or None,
            "q": q or None,
        }
        rejected = data.rejected_records(
            shot,
            table=filters["table"],
            store=filters["store"],
            rule=filters["rule"],
            search=filters["q"],
            limit=PAGE_ROWS,
            offset=page_no * PAGE_ROWS,
        )
        shown = {k: v for k, v in filters.items() if v}
        pages = {
            "previous": urlencode({**shown, "page": page_no - 1}) if page_no > 0 else None,
            "next": urlencode({**shown, "page": page_no + 1})
            if (page_no + 1) * PAGE_ROWS < rejected["total"]
            else None,
            "first": page_no * PAGE_ROWS + 1,
        }
        rules = sorted({r["rule"] for r in found["by_rule"]})
        return page(
            "quality.html", "Data quality", "/quality", shot=shot, specs=specs,
            rejected=rejected, f=filters, tables=tables, rules=rules, pages=pages,
        )  # fmt: skip

    @app.get("/data", response_class=HTMLResponse, include_in_schema=False)
    def data_page(table: str | None = None) -> HTMLResponse:
        shot = snapshot()
        over = overview_data(shot)
        chosen = table if table in tables else tables[0]
        found = profile_of(shot, chosen)
        dists = shot.memo(
            ("distribution specs", chosen),
            lambda: {
                column: charts.distribution_chart(column, dist)
                for column, dist in found["distributions"].items()
            },
        )
        return page(
            "data.html", "Data", "/data", shot=shot,
            charts=[declared(shot, name, over) for name in charts_by_name],
            tables=tables, profile=found, distribution_specs=dists,
            profile_warnings=data.warnings_for([chosen], over, present.quarantine_warning),
        )  # fmt: skip

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page() -> HTMLResponse:
        shot = snapshot()
        resolve_after = config.notify.grouping.resolve_after
        found = data.with_effects(config, shot, data.incidents(shot, resolve_after))
        return page(
            "alerts.html", "Alerts", "/alerts", shot=shot, incidents=found,
            resolve_after=f"{resolve_after:g} s",
        )  # fmt: skip

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(next: str = "/", failed: bool = False) -> HTMLResponse:
        html = env.get_template("login.html").render(
            pipeline=config.name, next=_safe_next(next), failed=failed
        )
        return HTMLResponse(html, status_code=401 if failed else 200)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        offered = (form.get("token") or [""])[0]
        target = _safe_next((form.get("next") or ["/"])[0])
        if token is None:
            return RedirectResponse(target, status_code=303)
        if not hmac.compare_digest(offered.encode(), token.encode()):
            time.sleep(0.5)  # slows guessing down a little
            return RedirectResponse(f"/login?failed=true&next={quote(target)}", status_code=303)
        response = RedirectResponse(target, status_code=303)
        _set_session(response, token, request)
        return response

    @app.get("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/assets/{name}", include_in_schema=False)
    def asset(name: str, request: Request) -> Response:
        if name == "vega.js":
            body: str | bytes = assets.vega_bundle()
            media = "text/javascript"
        elif name in assets.FILES:
            body, media = assets.static_file(name), assets.FILES[name]
        else:
            raise HTTPException(404, "no such asset")
        tag = assets.etag(body)
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers={"ETag": tag})
        return Response(body, media_type=media, headers={"ETag": tag, "Cache-Control": "no-cache"})

    # --- API --------------------------------------------------------------------------

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """Liveness: answers without a token, and says nothing about the data."""
        return {"ok": True, "version": __version__}

    @app.get("/api/overview", tags=["overview"])
    def api_overview() -> dict[str, Any]:
        """Per table: extracted, valid, invalid, failed, filtered, loaded, in flight and the
        ledger gap (null without Kafka), consumer lag, rows in the dead-letter and failed
        ops tables, curated rows, freshness (age of the newest `_dp_extracted_at`), open
        incidents and the quarantined share; the last run of each stage."""
        return overview_data(snapshot())

    @app.get("/api/throughput", tags=["overview"])
    def api_throughput(limit: int = Query(500, ge=1, le=10_000)) -> dict[str, Any]:
        """The newest stage runs from `_runs` (rows, rows per second, seconds, status)."""
        shot = snapshot()
        runs = data.throughput(shot, limit)
        return {"runs": runs, "spec": charts.throughput_chart(runs)}

    @app.get("/api/quality", tags=["quality"])
    def api_quality() -> dict[str, Any]:
        """Rejected records (dead-letter `dlq` and `failed`) over time, by rule and by
        column, and the totals per table."""
        return quality_of(snapshot())

    @app.get("/api/rejected", tags=["quality"])
    def api_rejected(
        table: str | None = None,
        store: Literal["dlq", "failed"] | None = None,
        rule: str | None = Query(None, description="e.g. `not_null(email)`"),
        q: str | None = Query(None, description="text in the key, message or value"),
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        """Rejected records, newest first, with their reasons (rule, column, value,
        message) and lineage (`_dp_source`, `_dp_pk`, `_dp_run`, topic, partition, offset)."""
        return data.rejected_records(
            snapshot(), table=table, store=store, rule=rule, search=q, limit=limit, offset=offset
        )

    @app.get("/api/incidents", tags=["alerts"])
    def api_incidents(status: Literal["open", "resolved"] | None = None) -> dict[str, Any]:
        """Incidents from `_alerts`, newest first (open: an event within
        `notify.grouping.resolve_after`), each with how far its notifications got
        (`delivery`) and the declared `charts` and scheduled `reports` it affects."""
        shot = snapshot()
        found = data.incidents(shot, config.notify.grouping.resolve_after)
        found = data.with_effects(config, shot, found)
        if status is not None:
            found = [i for i in found if i["status"] == status]
        return {"incidents": found}

    @app.get("/api/charts", tags=["data"])
    def api_charts() -> dict[str, Any]:
        """The charts declared under `present.charts`: rows, Vega-Lite spec, warnings."""
        shot = snapshot()
        over = overview_data(shot)
        return {"charts": [declared(shot, name, over) for name in charts_by_name]}

    @app.get("/api/charts/{name}", tags=["data"])
    def api_chart(name: str) -> dict[str, Any]:
        """One declared chart (404 for a name not declared)."""
        if name not in charts_by_name:
            raise HTTPException(404, f"no chart `{name}` in present.charts")
        shot = snapshot()
        return declared(shot, name, overview_data(shot))

    @app.get("/api/profile/{table}", tags=["data"])
    def api_profile(table: str) -> dict[str, Any]:
        """Automatic profile of a curated table: per column type, nulls, distinct values,
        min, max, mean, and a distribution (404 for a table not in the pipeline)."""
        if table not in tables:
            raise HTTPException(404, f"no table `{table}` in the pipeline")
        return profile_of(snapshot(), table)

    @app.post("/api/refresh", tags=["meta"])
    def api_refresh() -> dict[str, Any]:
        """Read the lake and the ledger now (instead of waiting for the refresh interval)."""
        shot = source.refresh()
        return {"loaded_at": shot.loaded_at.isoformat(), "read_seconds": shot.read_seconds}

    @app.exception_handler(DashboardError)
    async def dashboard_error(request: Request, exc: DashboardError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app


async def _answer_or_500(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The app's answer; an error it did not expect becomes a plain 500 here, inside the
    guard, so that it too carries the security headers and says nothing of the cause."""
    try:
        return await call_next(request)
    except Exception as exc:
        from dataplump.notify.events import redact

        log.error(
            "dashboard: %s %s failed: %s: %s",
            request.method, request.url.path, type(exc).__name__, redact(str(exc)),
        )  # fmt: skip
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "internal error (see the dashboard's log)"}, 500)
        return Response("internal error (see the dashboard's log)", 500, media_type="text/plain")


def _set_session(response: Response, token: str, request: Request) -> None:
    response.set_cookie(
        COOKIE,
        session_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def _safe_next(target: str) -> str:
    """Only a path of this app (no `//host`, no scheme): no open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


__all__ = ["LOOPBACK_HOSTS", "create_app", "session_value"]
