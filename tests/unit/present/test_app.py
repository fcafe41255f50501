"""The web app over an in-memory snapshot: pages, API, token, headers, no path traversal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dataplump.present.app import COOKIE, create_app, session_value
from dataplump.present.data import DashboardData
from tests.unit.present.frames import alert, config, snapshot

TOKEN = "t0ken-with-enough-entropy"
CHART = {
    "name": "by_status",
    "sql": "SELECT status, count(*) AS n FROM orders GROUP BY ALL",
    "kind": "bar",
    "x": "status",
    "y": "n",
}


def client(**present: Any) -> TestClient:
    pipeline = config(**present)
    now = datetime.now(UTC)  # the app judges incidents by the clock: one open now
    events = [alert("orders", now - timedelta(minutes=5), now, 2)]
    source = DashboardData(pipeline, None, refresh_seconds=3600, reader=lambda _: snapshot(events))
    return TestClient(create_app(pipeline, source), follow_redirects=False)


PAGES = [
    "/",
    "/quality",
    "/data",
    "/alerts",
    "/data?table=customers",
    "/quality?store=dlq&rule=min(amount)",
]
API = ["/api/overview", "/api/quality", "/api/rejected", "/api/incidents", "/api/throughput",
       "/api/charts", "/api/charts/by_status", "/api/profile/orders", "/openapi.json"]  # fmt: skip


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_charts(path: str) -> None:
    response = client(charts=[CHART]).get(path)
    assert response.status_code == 200, response.text
    assert '<script src="/assets/vega.js"></script>' in response.text
    assert "https://" not in response.text.replace("https://vega.github.io/schema", "")
    if path != "/alerts":
        assert 'data-spec="spec-' in response.text


@pytest.mark.parametrize("path", API)
def test_api_answers_json(path: str) -> None:
    response = client(charts=[CHART]).get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"


def test_chart_with_warnings_and_failing_sql() -> None:
    broken = {**CHART, "name": "broken", "sql": "SELECT nope FROM orders"}
    app = client(charts=[CHART, broken], quarantine_warning=0.1)
    found = {c["name"]: c for c in app.get("/api/charts").json()["charts"]}
    assert found["by_status"]["tables"] == ["orders"]
    assert any("quarantined" in w for w in found["by_status"]["warnings"])
    assert any("open incident" in w for w in found["by_status"]["warnings"])
    assert "its SQL failed" in found["broken"]["error"]
    page = app.get("/data").text
    assert "quarantined" in page
    assert 'role="alert"' in page
    assert "its SQL failed" in page


def test_rejected_filters_and_bounds() -> None:
    app = client()
    body = app.get("/api/rejected", params={"table": "orders", "store": "failed"}).json()
    assert body["total"] == 1
    assert body["records"][0]["rules"] == "relationships(customer_id)"
    assert app.get("/api/rejected", params={"store": "other"}).status_code == 422
    assert app.get("/api/rejected", params={"limit": 100000}).status_code == 422


def test_unknown_names_are_404() -> None:
    app = client(charts=[CHART])
    assert app.get("/api/profile/nope").status_code == 404
    assert app.get("/api/charts/nope").status_code == 404


def assert_security_headers(response: Any) -> None:
    headers = response.headers
    where = (response.request.method, str(response.request.url), response.status_code)
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") == "no-referrer", where
    csp = headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp, where
    assert "script-src 'self';" in csp, where
    assert "unsafe-eval" not in csp, where
    assert "frame-ancestors 'none'" in csp, where


def test_security_headers_on_every_response() -> None:
    app = client(charts=[CHART])
    others = ["/assets/app.js", "/assets/app.css", "/nope", "/login", "/api/health",
              "/favicon.ico", "/api/rejected?limit=0", "/api/charts/nope"]  # fmt: skip
    for path in [*PAGES, *API, *others]:
        assert_security_headers(app.get(path))
    assert_security_headers(app.post("/api/refresh"))
    assert_security_headers(app.post("/api/overview"))  # 405
    assert_security_headers(app.get("/api/overview", headers={"If-None-Match": "x"}))
    guarded = client(auth_token=TOKEN)
    for path in ("/", "/api/overview", "/openapi.json", "/logout"):
        assert_security_headers(guarded.get(path))  # 303 and 401 answers too
    assert_security_headers(guarded.post("/login", data={"token": "wrong"}))


def test_security_headers_on_an_internal_error() -> None:
    """A snapshot that cannot be read ends in a 500 that still carries the headers and
    says nothing about the failure."""
    pipeline = config()

    def reader(_: bool) -> Any:
        raise RuntimeError("boom at sqlite:///secret/place.db")

    source = DashboardData(pipeline, None, refresh_seconds=3600, reader=reader)
    app = TestClient(create_app(pipeline, source), raise_server_exceptions=False)
    for path in ("/", "/api/overview"):
        response = app.get(path)
        assert response.status_code == 500, path
        assert "secret/place" not in response.text
        assert_security_headers(response)


@pytest.mark.parametrize(
    "path",
    [
        "/assets/../app.py",
        "/assets/..%2fapp.py",
        "/assets/%2e%2e%2f%2e%2e%2fconfig%2fmodels.py",
        "/assets/..%5c..%5capp.py",
        "/assets/templates/base.html",
        "/assets/%2Fetc%2Fpasswd",
        "/api/profile/..%2f..%2fetc%2fpasswd",
        "/static/app.js",
        "/templates/base.html",
        "/assets/%2e%2e%2fapp.py",
        "/assets/%2E%2E",
        "/assets/app.js%00.py",
        "/assets/app.js%00",
        "/assets/%00",
        "/assets//etc/passwd",
        "/assets/~/.bashrc",
        "/assets/app.js/..%2f..%2fapp.py",
        "/assets/vega.js%2f..%2f..%2fapp.py",
        "/api/charts/..%2f..%2fetc%2fpasswd",
        "/api/charts/%2e%2e",
        "/api/charts/by_status%00",
        "/api/charts/%2Fetc%2Fpasswd",
        "/api/profile/%2e%2e%2forders",
        "/api/profile/orders%00",
        "/api/profile/%2Fetc%2Fpasswd",
        "/api/profile/orders%2f..%2f..%2fapp.py",
    ],
)
def test_no_path_traversal(path: str) -> None:
    response = client(charts=[CHART]).get(path)
    assert response.status_code in (404, 307, 308), (path, response.status_code)
    assert "root:" not in response.text
    assert "import" not in response.text
    assert_security_headers(response)


@pytest.mark.parametrize(
    "table", ["../../etc/passwd", "/etc/passwd", "orders\x00", "..", "orders/../customers"]
)
def test_a_table_name_in_a_query_is_only_ever_looked_up(table: str) -> None:
    """``?table=`` picks one of the pipeline's tables or nothing: never a path, never SQL."""
    app = client(charts=[CHART])
    page = app.get("/data", params={"table": table})
    assert page.status_code == 200
    assert "root:" not in page.text
    rejected = app.get("/api/rejected", params={"table": table}).json()
    assert rejected["total"] == 0
    quality = app.get("/quality", params={"table": table, "q": "' OR 1=1 --"})
    assert quality.status_code == 200
    assert "records 1 to" not in quality.text


def test_sql_in_the_search_box_is_text() -> None:
    app = client()
    assert app.get("/api/rejected", params={"q": "' OR 1=1 --"}).json()["total"] == 0
    assert app.get("/api/rejected", params={"rule": "x') OR ('1'='1"}).json()["total"] == 0
    assert app.get("/api/rejected").json()["total"] == 4


def test_assets_are_served_by_the_app() -> None:
    app = client()
    js = app.get("/assets/app.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    again = app.get("/assets/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304


def test_without_token_everything_is_open() -> None:
    assert client().get("/api/overview").status_code == 200


def test_token_required_on_api_and_pages() -> None:
    app = client(auth_token=TOKEN)
    for path in API:
        response = app.get(path)
        assert response.status_code == 401, path
        assert TOKEN not in response.text
    page = app.get("/quality?table=orders")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/quality%3Ftable%3Dorders"
    assert app.get("/api/health").status_code == 200
    assert app.get("/login").status_code == 200
    assert app.get("/assets/app.css").status_code == 200


def routes_to_try(app: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) the app routes, path parameters filled with real names: a
    route added later is covered without touching this test."""
    found = []
    for route in app.app.routes:  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        path = path.replace("{name}", CHART["name"]).replace("{table}", "orders")
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            found.append((method, path))
    return found


def test_token_required_on_every_route() -> None:
    app = client(auth_token=TOKEN, charts=[CHART])
    routes = routes_to_try(app)
    assert ("POST", "/api/refresh") in routes
    assert ("GET", "/api/charts/by_status") in routes
    open_routes = {"/login", "/api/health", "/favicon.ico", "/assets/{name}", "/logout"}
    closed = 0
    for method, path in routes:
        if path in open_routes or path.startswith("/assets/"):
            continue
        response = app.request(method, path)
        if path.startswith("/api/") or path.startswith("/openapi") or path.startswith("/docs"):
            assert response.status_code == 401, (method, path, response.status_code)
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login?next="), (method, path)
        assert TOKEN not in response.text
        closed += 1
        # with the token, the same request gets through the guard
        allowed = app.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code not in (401, 303), (method, path, allowed.status_code)
    assert closed >= len(PAGES) - 2 + len(API)


@pytest.mark.parametrize(
    "path",
    [
        "/loginx/../api/overview",
        "/assets/../api/overview",
        "/api/health/../overview",
        "//api/overview",
        "/API/overview",
        "/api/overview/",
        "/api/overview;token=x",
        "/api/overview?token=",
        "/api/overview?token=t0ken",
        "/openapi.json?x=1",
        "/data/",
    ],
)
def test_no_way_around_the_token(path: str) -> None:
    response = client(auth_token=TOKEN).get(path)
    assert response.status_code in (401, 303, 404, 307), (path, response.status_code)
    if response.status_code == 307:  # a trailing-slash redirect: followed, it is closed too
        assert client(auth_token=TOKEN).get(response.headers["location"]).status_code in (
            401, 303, 404,
        )  # fmt: skip
    assert '"tables"' not in response.text


def test_wrong_token_in_every_place_is_refused() -> None:
    app = client(auth_token=TOKEN)
    for headers in (
        {"Authorization": "Bearer "},
        {"Authorization": "Basic " + TOKEN},
        {"Authorization": TOKEN},
        {"X-DataPlump-Token": TOKEN[:-1]},
        {"X-DataPlump-Token": TOKEN.upper()},
        {"Cookie": f"{COOKIE}={TOKEN}"},  # the cookie holds the keyed hash, not the token
        {"Cookie": f"{COOKIE}="},
    ):
        assert app.get("/api/overview", headers=headers).status_code == 401, headers
        app.cookies.clear()


def test_token_in_header_bearer_or_query() -> None:
    app = client(auth_token=TOKEN)
    assert app.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert app.get("/api/overview", headers={"X-DataPlump-Token": TOKEN}).status_code == 200
    assert app.get("/api/overview", params={"token": TOKEN}).status_code == 200
    assert app.get("/api/overview", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        app.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    )


def test_query_token_on_a_page_sets_the_session_and_leaves_the_address() -> None:
    app = client(auth_token=TOKEN)
    response = app.get("/data", params={"token": TOKEN, "table": "orders"})
    assert response.status_code == 303
    assert response.headers["location"] == "/data?table=orders"
    assert app.cookies.get(COOKIE) == session_value(TOKEN)
    assert app.get("/data?table=orders").status_code == 200


def test_login_form_sets_an_http_only_cookie() -> None:
    app = client(auth_token=TOKEN)
    wrong = app.post("/login", data={"token": "nope", "next": "/alerts"})
    assert wrong.status_code == 303
    assert "failed=true" in wrong.headers["location"]
    assert COOKIE not in app.cookies
    right = app.post("/login", data={"token": TOKEN, "next": "/alerts"})
    assert right.status_code == 303
    assert right.headers["location"] == "/alerts"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert TOKEN not in cookie
    assert app.get("/alerts").status_code == 200
    assert app.get("/api/overview").status_code == 200
    app.get("/logout")
    assert app.get("/alerts").status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_the_app(target: str) -> None:
    app = client(auth_token=TOKEN)
    response = app.post("/login", data={"token": TOKEN, "next": target})
    assert response.headers["location"] == "/"


def test_forged_cookie_is_refused() -> None:
    app = client(auth_token=TOKEN)
    app.cookies.set(COOKIE, session_value("another token"))
    assert app.get("/api/overview").status_code == 401


def test_openapi_documents_the_api_and_no_cdn_docs() -> None:
    app = client()
    paths = app.get("/openapi.json").json()["paths"]
    for path in ("/api/overview", "/api/rejected", "/api/incidents", "/api/charts/{name}",
                 "/api/profile/{table}", "/api/quality", "/api/throughput"):  # fmt: skip
        assert path in paths
    assert "/" not in paths
    assert app.get("/docs").status_code == 404  # Swagger UI would load a CDN


def test_quality_page_pages_through_rejected_records(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataplump.present import app as module

    monkeypatch.setattr(module, "PAGE_ROWS", 3)
    app = client()
    first = app.get("/quality", params={"table": "orders"}).text
    assert "records 1 to 3 of 3" in first
    assert "older</a>" not in first
    everything = app.get("/quality").text
    assert "records 1 to 3 of 4" in everything
    assert 'href="/quality?page=1"' in everything
    second = app.get("/quality", params={"page": 1}).text
    assert "records 4 to 4 of 4" in second
    assert 'href="/quality?page=0"' in second


def test_loopback_dashboard_refuses_other_host_headers() -> None:
    from dataplump.present.app import LOOPBACK_HOSTS

    pipeline = config()
    source = DashboardData(pipeline, None, refresh_seconds=3600, reader=lambda _: snapshot())
    app = TestClient(create_app(pipeline, source, allowed_hosts=LOOPBACK_HOSTS))
    assert app.get("/api/health", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    assert app.get("/api/health", headers={"Host": "localhost:8050"}).status_code == 200
    assert app.get("/api/overview", headers={"Host": "evil.example:8050"}).status_code == 400


def test_overview_says_why_the_ledger_is_missing() -> None:
    pipeline = config()

    def reader(_: bool) -> Any:
        shot = snapshot()
        shot.ledger_error = "TransientBusError: listing the topics failed"
        return shot

    source = DashboardData(pipeline, None, refresh_seconds=3600, reader=reader)
    app = TestClient(create_app(pipeline, source))
    page = app.get("/").text
    assert "The ledger could not be read: TransientBusError" in page
    assert "not read" in page
    assert app.get("/api/overview").json()["ledger_error"].startswith("TransientBusError")


def test_an_incident_names_its_delivery_and_the_charts_and_reports_it_affects(
    tmp_path: Any,
) -> None:
    reports = [
        {"every": "1d", "to": str(tmp_path), "name": "daily"},
        {"every": "1h", "to": str(tmp_path), "name": "customers_hourly", "tables": ["customers"]},
    ]
    other = {"name": "customers_n", "sql": "SELECT count(*) AS n FROM customers"}
    other |= {"kind": "kpi", "y": "n"}
    app = client(charts=[CHART, other], reports=reports)
    (incident,) = app.get("/api/incidents").json()["incidents"]
    assert incident["table"] == "orders"
    assert incident["charts"] == ["by_status"]
    assert incident["reports"] == ["daily"]
    assert incident["delivery"] == "unknown (the notifier was not read)"  # a snapshot of frames
    page = app.get("/alerts").text
    assert '<a href="/data">by_status</a>; report daily' in page
