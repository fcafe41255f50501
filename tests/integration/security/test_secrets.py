"""Planted secrets never reach what a user sees.

A pipeline on a real PostgreSQL source whose role has a distinctive password, a webhook
whose URL carries a token (its server answers 404 and echoes the path back, as many do),
an SMTP server that refuses the planted password, and a dashboard token. Every output is
grepped for each secret: the logs of `run --once`, `status` and `status --json`, the
error lines when the database is dead or unknown, `config check` and `config check
--show`, reports in HTML and Markdown, every file the run wrote (the lake's tables read
as text), and every page and API answer of the dashboard."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dataplump.config import load_config
from dataplump.present.app import create_app
from dataplump.present.data import DashboardData
from dataplump.testing.databases import PostgresServer
from tests.integration.notify.servers import Mailbox, Request, WebhookServer, self_signed
from tests.support.cli import CliResult, run_command

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

MARK = uuid.uuid4().hex[:10]
DB_PASSWORD = f"PlantedDb{MARK}/+:x"  # characters a URL must encode
HOOK_TOKEN = f"PlantedHook{MARK}"
SMTP_PASSWORD = f"PlantedSmtp{MARK}"
DASH_TOKEN = f"PlantedDash{MARK}"
SECRETS = {
    "database password": f"PlantedDb{MARK}",
    "webhook token": HOOK_TOKEN,
    "SMTP password": SMTP_PASSWORD,
    "dashboard token": DASH_TOKEN,
}
ROWS = 80

PIPELINE = """
pipeline: {{name: sec{mark}}}
source: {{url: "{source}"}}
kafka: {{bootstrap_servers: "{bootstrap}"}}
sinks:
  lake: {{kind: delta, path: lake}}
notify:
  grouping: {{group_wait: 0s}}
  channels:
    - kind: log
    - kind: webhook
      url: "http://127.0.0.1:{hook_port}/hooks/{hook}?token={hook}"
    - kind: email
      smtp_host: 127.0.0.1
      smtp_port: {smtp_port}
      username: alerts
      password: ${{SMTP_PASSWORD}}
      from: dataplump@example.com
      to: [ops@example.com]
present:
  auth_token: ${{DASHBOARD_TOKEN}}
  charts:
    - name: by_amount
      sql: SELECT amount, count(*) AS n FROM orders GROUP BY ALL
      kind: bar
      x: amount
      y: n
tables:
  orders:
    primary_key: id
    mode: incremental
    cursor: at
    lag_seconds: 0
    contract:
      columns:
        id: {{type: int64, not_null: true}}
        amount: {{type: "decimal(10,2)", min: 0}}
"""


def leaks(text: str) -> list[str]:
    """The planted secrets found in ``text`` (also URL-encoded)."""
    from urllib.parse import quote

    return [
        what
        for what, secret in SECRETS.items()
        if secret in text or quote(secret, safe="") in text or secret.lower() in text.lower()
    ]


@dataclass
class Planted:
    folder: Path
    config: Path
    env: dict[str, str]
    source_url: str
    bootstrap: str
    run: CliResult
    webhook: WebhookServer
    mailbox: Mailbox

    def dataplump(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        return run_command(
            *args, logs=self.folder / "logs", cwd=self.folder, env={**self.env, **(env or {})},
            timeout=600,
        )  # fmt: skip


def echo_path(request: Request) -> tuple[int, bytes, dict[str, str]]:
    """A receiver that does not know the hook, saying so with the URL it was sent."""
    return 404, f"no hook at {request.path}".encode(), {}


@contextmanager
def source_database(server: PostgresServer) -> Iterator[str]:
    """A fresh database whose `orders` belong to a role with the planted password; its
    URL (password URL-encoded). Database and role are dropped afterwards."""
    database = sa.make_url(server.create_database())
    role = f"dp_sec_{MARK}"
    try:
        admin = sa.create_engine(
            database.set(password=server.password.get_secret_value()),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'")
            conn.execute(sa.text(f"GRANT ALL ON SCHEMA public TO {role}"))
            conn.execute(
                sa.text("CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), at int)")
            )
            conn.execute(
                sa.text(
                    "INSERT INTO orders SELECT i, CASE WHEN i % 9 = 0 THEN -i ELSE i END + 0.5,"
                    " i FROM generate_series(1, :rows) AS i"
                ),
                {"rows": ROWS},
            )
            conn.execute(sa.text(f"ALTER TABLE orders OWNER TO {role}"))
        admin.dispose()
        source = database.set(username=role, password=DB_PASSWORD)
        yield source.render_as_string(hide_password=False)
    finally:
        server.drop_database(str(database))
        with server._admin("drop role") as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))


@pytest.fixture(scope="module")
def planted(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer, kafka_bootstrap: str
) -> Iterator[Planted]:
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "tls").mkdir()
    certificate = self_signed(folder / "tls")
    with ExitStack() as stack:
        webhook = WebhookServer()
        stack.callback(webhook.close)
        webhook.respond = echo_path
        mailbox = Mailbox(certificate)  # accepts alerts/s3cret-pw only: the planted one fails
        stack.callback(mailbox.close)
        source_url = stack.enter_context(source_database(postgres_server))
        assert DB_PASSWORD not in source_url  # encoded in the URL: `/`, `+` and `:` escaped
        config = folder / "dataplump.yaml"
        config.write_text(
            PIPELINE.format(
                mark=MARK, source=source_url, bootstrap=kafka_bootstrap, hook_port=webhook.port,
                hook=HOOK_TOKEN, smtp_port=mailbox.port,
            )
        )  # fmt: skip
        env = {
            "SMTP_PASSWORD": SMTP_PASSWORD,
            "DASHBOARD_TOKEN": DASH_TOKEN,
            "SSL_CERT_FILE": str(certificate[0]),
            "DATAPLUMP_LOG_LEVEL": "debug",  # every log line there is, not only warnings
        }
        run = run_command(
            "run", "-c", str(config), "--once", "--metrics-port", "0",
            logs=folder / "logs", cwd=folder, env=env, timeout=900,
        )  # fmt: skip
        yield Planted(folder, config, env, source_url, kafka_bootstrap, run, webhook, mailbox)


def test_run_once_loads_and_its_logs_hold_no_secret(planted: Planted) -> None:
    run = planted.run
    assert run.returncode == 0, run.describe()
    lake = pl.read_delta(str(planted.folder / "lake" / "orders"))
    assert lake.height == ROWS - ROWS // 9
    # the channels were really tried with the secrets, and refused
    assert any(HOOK_TOKEN in r.path for r in planted.webhook.requests)
    assert any(not ok for (_, _, ok) in planted.mailbox.logins)
    output = run.stdout + run.stderr
    assert re.search(r"\b(DEBUG|INFO)\b", output), output[-3000:]  # the chatty levels too
    assert "refused the notification: HTTP 404" in output, run.describe()
    assert "refused the login of 'alerts'" in output, run.describe()
    assert leaks(output) == [], output


def test_status_holds_no_secret(planted: Planted) -> None:
    for args in (("--json",), ()):
        status = planted.dataplump("status", "-c", str(planted.config), *args)
        assert status.returncode in (0, 1), status.describe()
        assert "orders" in status.stdout
        assert leaks(status.stdout + status.stderr) == [], status.describe()
    found = json.loads(planted.dataplump("status", "-c", str(planted.config), "--json").stdout)
    assert found["tables"]["orders"]["read"] == ROWS


def test_config_check_and_show_hold_no_secret(planted: Planted) -> None:
    for args in ((), ("--show",)):
        checked = planted.dataplump("config", "check", "-c", str(planted.config), *args)
        assert checked.returncode == 0, checked.describe()
        assert leaks(checked.stdout + checked.stderr) == [], checked.describe()
    shown = planted.dataplump("config", "check", "-c", str(planted.config), "--show").stdout
    assert "127.0.0.1" in shown
    assert "orders" in shown


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ({"port": "1"}, "cannot reach PostgreSQL at 127.0.0.1:1"),  # nothing listens
        ({"host": "no-such-host.invalid"}, "cannot resolve the host `no-such-host.invalid`"),
        ({"database": "no_such_database"}, "has no database `no_such_database`"),
        ({"password": DB_PASSWORD + "wrong"}, "rejected the login of user `dp_sec_"),
    ],
    ids=["dead port", "unknown host", "no database", "wrong password"],
)
def test_a_dead_database_names_no_secret(
    planted: Planted, where: dict[str, str], said: str
) -> None:
    url = sa.make_url(planted.source_url)
    url = url.set(**{k: int(v) if k == "port" else v for k, v in where.items()})  # type: ignore[arg-type]
    broken = planted.folder / f"broken-{'-'.join(where)}.yaml"
    text = planted.config.read_text()
    broken.write_text(text.replace(planted.source_url, url.render_as_string(hide_password=False)))
    for args in (("extract", "--once"), ("run", "--once", "--metrics-port", "0")):
        failed = planted.dataplump(*args, "-c", str(broken))
        assert failed.returncode != 0, failed.describe()
        assert failed.stderr.strip(), failed.describe()
        assert leaks(failed.stdout + failed.stderr) == [], failed.describe()
        assert said in failed.stderr, failed.describe()
        assert ":***@" in failed.stderr, failed.describe()  # the URL, shown masked


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_reports_hold_no_secret(planted: Planted, fmt: str) -> None:
    target = planted.folder / f"report.{fmt}"
    made = planted.dataplump("report", "-c", str(planted.config), "-o", str(target))
    assert made.returncode == 0, made.describe()
    text = target.read_text()
    assert "orders" in text
    assert leaks(text) == []
    assert leaks(made.stdout + made.stderr) == []


def test_nothing_the_run_wrote_holds_a_secret(planted: Planted) -> None:
    """Every file under the work folder but the pipeline file itself (state, logs, the
    lake's tables read as text: `_alerts` keeps error messages)."""
    assert planted.run.returncode == 0
    mine = {planted.config, *planted.folder.glob("broken-*.yaml")}
    checked = 0
    for path in planted.folder.rglob("*"):
        if not path.is_file() or path in mine:
            continue
        assert leaks(path.read_bytes().decode("utf-8", "replace")) == [], path
        checked += 1
    tables = [p.parent for p in (planted.folder / "lake").rglob("_delta_log")]
    assert {t.name for t in tables} >= {"orders", "_dlq", "_alerts"}
    for table in tables:
        frame = pl.read_delta(str(table))
        text = frame.select(pl.all().cast(pl.String, strict=False)).write_csv()
        assert leaks(text) == [], table.name
    assert checked > 10


def every_route(app: Any) -> list[str]:
    paths = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if "GET" in (getattr(route, "methods", None) or ()):
            paths.append(path.replace("{name}", "by_amount").replace("{table}", "orders"))
    return paths


def test_the_dashboard_shows_no_secret(planted: Planted) -> None:
    config = load_config(planted.config, env=planted.env)
    source = DashboardData(config, planted.bootstrap, refresh_seconds=3600)
    source.refresh()
    app = create_app(config, source)
    client = TestClient(app, follow_redirects=False)
    routes = every_route(app)
    assert {"/", "/alerts", "/api/incidents", "/api/charts/by_amount"} <= set(routes)
    seen = 0
    for path in [*routes, "/data?table=orders", "/quality?store=dlq", "/login?next=/alerts"]:
        for headers in ({}, {"Authorization": f"Bearer {DASH_TOKEN}"}):
            response = client.get(path, headers=headers)
            assert response.status_code < 500, (path, response.status_code)
            answer = response.text + json.dumps(dict(response.headers))
            assert leaks(answer) == [], (path, leaks(answer))
            seen += response.status_code == 200
    incidents = client.get(
        "/api/incidents", headers={"Authorization": f"Bearer {DASH_TOKEN}"}
    ).json()["incidents"]
    assert incidents, "the run's rejected rows made no incident"
    assert seen > len(routes)
    # logging in sets a cookie that is not the token
    login = client.post("/login", data={"token": DASH_TOKEN, "next": "/"})
    assert login.status_code == 303
    assert leaks(login.headers["set-cookie"]) == []


def test_a_password_in_the_url_query_is_masked_too(planted: Planted) -> None:
    """libpq takes `?password=` (and `sslpassword`) in the query as well: every output that
    shows the URL masks those values like the password."""
    url = sa.make_url(planted.source_url)
    queried = url.set(password=None, port=1).update_query_dict(
        {"password": DB_PASSWORD, "sslpassword": DB_PASSWORD + "ssl"}
    )
    text = planted.config.read_text()
    config = planted.folder / "broken-query.yaml"
    config.write_text(text.replace(planted.source_url, queried.render_as_string(False)))
    for args in (("config", "check"), ("config", "check", "--show"), ("extract", "--once")):
        done = planted.dataplump(*args, "-c", str(config))
        assert "password=***" in done.stdout + done.stderr, done.describe()
        assert "sslpassword=***" in done.stdout + done.stderr, done.describe()
        assert leaks(done.stdout + done.stderr) == [], done.describe()
