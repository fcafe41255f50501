"""Scheduled reports from `dataplump run`: the `report` stage writes the due reports to a
folder and e-mails one (a real SMTP server on 127.0.0.1), and a second run neither writes
nor sends the daily ones again (the state in `<pipeline>.report-state`)."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dataplump.sample.manifest import Manifest
from tests.integration.notify.servers import Mailbox
from tests.support.cli import run_command

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

EXAMPLE = Path(__file__).parents[3] / "examples" / "shop"
REPORTS = """
present:
  reports:
    - {every: 1d, format: pdf, to: reports}
    - {every: 10s, since: 1d, format: md, to: reports, name: rolling}
    - {every: 1d, format: html, to: boss@example.com, name: daily-mail, tables: [orders]}
"""


@pytest.mark.timeout(900)
def test_run_writes_and_sends_due_reports_once(tmp_path: Path, kafka_bootstrap: str) -> None:
    mailbox = Mailbox()
    try:
        shutil.copytree(EXAMPLE, tmp_path / "shop")
        config_file = tmp_path / "shop" / "dataplump.yaml"
        text = config_file.read_text().replace(
            "notify:\n  channels:\n    - kind: log\n",
            "notify:\n  channels:\n    - kind: log\n"
            f"    - {{kind: email, smtp_host: 127.0.0.1, smtp_port: {mailbox.port},"
            " from: dataplump@example.com, to: [alerts@example.com]}\n",
        )
        config_file.write_text(text.replace("\npresent:\n", REPORTS, 1))  # beside the charts
        logs, url = tmp_path / "logs", f"sqlite:///{tmp_path / 'shop.db'}"
        created = run_command(
            "sample", "create", "--url", url, "--rows", "300", "--seed", "5", "--json",
            logs=logs, cwd=tmp_path,
        )  # fmt: skip
        assert created.returncode == 0, created.describe()
        manifest = Manifest.from_dict(json.loads(created.stdout))
        env = {
            "DATAPLUMP__PIPELINE__NAME": f"rep{uuid.uuid4().hex[:8]}",
            "SHOP_DB_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        }
        args = ("run", "-c", str(config_file), "--once", "--metrics-port", "0")
        first = run_command(*args, logs=logs, cwd=tmp_path, timeout=600, env=env)
        assert first.returncode == 0, first.describe()
        assert "report done" in first.stdout or "report=done" in first.stdout, first.stdout

        folder = tmp_path / "shop" / "reports"
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        daily = folder / f"report-{yesterday}.pdf"
        assert daily.read_bytes().startswith(b"%PDF")
        assert len(list(folder.glob("rolling-*.md"))) == 1

        mails = [m for m in mailbox.mails if "daily-mail" in m.message["Subject"]]
        assert len(mails) == 1
        mail = mails[0]
        assert mail.recipients == ["boss@example.com"]
        assert mail.message["From"] == "dataplump@example.com"
        (attachment,) = [p for p in mail.message.walk() if p.get_filename()]
        assert attachment.get_filename() == f"daily-mail-{yesterday}.html"
        page = attachment.get_payload(decode=True)
        assert isinstance(page, bytes)
        assert b"<svg" not in page or b"http://www.w3.org/2000/svg" in page
        assert b'data-figure="orders.extracted"' in page
        assert b'data-figure="customers.' not in page  # tables: [orders]

        written = daily.stat().st_mtime_ns
        second = run_command(*args, logs=logs, cwd=tmp_path, timeout=600, env=env)
        assert second.returncode == 0, second.describe()
        assert daily.stat().st_mtime_ns == written  # not written again
        assert len([m for m in mailbox.mails if "daily-mail" in m.message["Subject"]]) == 1
        rolling = sorted(folder.glob("rolling-*.md"))
        assert len(rolling) == 2  # a new 10 s period had ended
        # The newest period ends after the first run's extraction (the first one's may
        # not: a period ends on a 10 s boundary, and the rows may come after it).
        md = rolling[-1].read_text()
        for name, table in manifest.tables.items():
            row = re.search(rf"^\| {name} \| ([\d,]+) ", md, re.M)
            assert row is not None, name
            assert row.group(1) == f"{table.rows:,}", name  # every row was extracted in it
    finally:
        mailbox.close()
