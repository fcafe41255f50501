"""Scheduled reports without Kafka: due periods, the state that keeps a report from being
made twice, failures tried again, the `present.reports` config, the `report` command."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.config import load_config
from dataplump.config.issues import InvalidConfigError
from dataplump.config.models import ReportSchedule
from dataplump.pipeline.stages import STAGES, stages_for
from dataplump.present.report import Period
from dataplump.present.report_schedule import (
    ReportState,
    due_period,
    file_name,
    next_due,
    run_due_reports,
    seconds_until_due,
)
from tests.unit.present.test_report import NOW, shop_config, shop_snapshot

HOUR = timedelta(hours=1)


def schedule(**fields: Any) -> ReportSchedule:
    return ReportSchedule.model_validate({"every": "1d", "to": "/tmp/x", **fields})


def test_due_periods_are_aligned_to_whole_multiples_of_every() -> None:
    daily = schedule()
    at = NOW + timedelta(hours=10)
    assert due_period(daily, at) == Period(NOW - timedelta(days=1), NOW)
    assert next_due(daily, at) == NOW + timedelta(days=1)
    assert due_period(daily, NOW) == Period(NOW - timedelta(days=1), NOW)  # due at midnight
    weekly_of_hours = schedule(every="1h", since="7d")
    assert due_period(weekly_of_hours, at) == Period(at - timedelta(days=7), at)
    assert file_name(daily, due_period(daily, at)) == "report-2026-11-27.pdf"
    assert file_name(schedule(every="1h", format="md", name="hourly"), Period(at - HOUR, at)) == (
        "hourly-2026-11-28T0900Z--2026-11-28T1000Z.md"
    )


def test_a_due_report_is_written_once_and_remembered(tmp_path: Path) -> None:
    config = shop_config(reports=[{"every": "1d", "format": "html", "to": str(tmp_path)}])
    state = ReportState()
    reads: list[int] = []

    def read() -> Any:
        reads.append(1)
        return shop_snapshot()

    at = NOW + timedelta(hours=10)
    (done,) = run_due_reports(config, at, state, read=read)
    assert done.ok
    assert done.to == str(tmp_path / "report-2026-11-27.html")
    assert "12,352" in (tmp_path / "report-2026-11-27.html").read_text()
    key = config.present.reports[0].key
    assert state.last(key) == NOW
    assert run_due_reports(config, at + HOUR, state, read=read) == []  # not twice
    assert reads == [1]  # and the lake is not even read
    assert seconds_until_due(config, at, state) == pytest.approx(14 * 3600)
    # the next day's report once that day has ended
    (later,) = run_due_reports(config, NOW + timedelta(days=1, minutes=1), state, read=read)
    assert later.to.endswith("report-2026-11-28.html")


def test_a_failed_report_is_not_remembered_and_is_due_again(tmp_path: Path) -> None:
    blocked = tmp_path / "reports"
    blocked.write_text("a file where the folder should be")
    config = shop_config(reports=[{"every": "1d", "format": "md", "to": str(blocked)}])
    state = ReportState()
    (failed,) = run_due_reports(config, NOW + HOUR, state, read=shop_snapshot)
    assert not failed.ok
    assert failed.error is not None
    assert "cannot make the report folder" in failed.error
    assert state.last(config.present.reports[0].key) is None
    assert seconds_until_due(config, NOW + HOUR, state) == 0.0
    blocked.unlink()
    (done,) = run_due_reports(config, NOW + HOUR, state, read=shop_snapshot)
    assert done.ok
    assert (blocked / "report-2026-11-27_files" / "by_status.png").is_file()


def test_stages_of_run_include_report_only_when_scheduled() -> None:
    assert stages_for(shop_config()) == STAGES
    scheduled = shop_config(reports=[{"every": "1d", "to": "/tmp/r"}])
    assert stages_for(scheduled) == (*STAGES, "report")


MINIMAL = """\
pipeline: {name: shop}
source: {url: 'sqlite:///shop.db'}
tables: {orders: {primary_key: id}}
"""


def _issues(tmp_path: Path, text: str) -> list[str]:
    file = tmp_path / "dataplump.yaml"
    file.write_text(MINIMAL + text)
    with pytest.raises(InvalidConfigError) as caught:
        load_config(file)
    return [str(issue) for issue in caught.value.issues]


def test_report_schedules_are_checked_where_they_are_written(tmp_path: Path) -> None:
    (issue,) = _issues(tmp_path, "present:\n  reports:\n    - {every: 5s, to: out}\n")
    assert "present.reports[0].every: expected a number >= 10.0" in issue
    (issue,) = _issues(tmp_path, "present:\n  reports:\n    - {every: 1d, to: boss@example.com}\n")
    assert "present.reports[0].to" in issue
    assert "`email` channel of `notify.channels`" in issue
    (issue,) = _issues(
        tmp_path, "present:\n  reports:\n    - {every: 1d, to: r, tables: [ordrs]}\n"
    )
    assert "present.reports[0].tables" in issue
    assert "did you mean `orders`?" in issue
    (issue,) = _issues(tmp_path, "present:\n  reports:\n    - {every: 1d, to: 'a@b'}\n")
    assert "neither a folder path nor an e-mail address" in issue


def test_a_report_folder_is_relative_to_the_pipeline_file(tmp_path: Path) -> None:
    file = tmp_path / "dataplump.yaml"
    file.write_text(MINIMAL + "present:\n  reports:\n    - {every: 12h, to: reports, format: md}\n")
    (entry,) = load_config(file).present.reports
    assert entry.folder == tmp_path / "reports"
    assert not entry.is_email
    assert (entry.every, entry.period, entry.format) == (43200.0, 43200.0, "md")


def test_report_command_help_and_one_line_errors(tmp_path: Path) -> None:
    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    result = CliRunner().invoke(app, ["report", "--help"], env=env)
    assert result.exit_code == 0
    for option in ("--format", "--since", "--until", "--table", "--output", "--config"):
        assert option in result.output
    file = tmp_path / "dataplump.yaml"
    file.write_text(MINIMAL)
    result = CliRunner().invoke(app, ["report", "-c", str(file), "-t", "ordrs"], env=env)
    assert result.exit_code == 1
    assert "no table `ordrs`" in result.output
    assert "did you mean `orders`?" in result.output
    result = CliRunner().invoke(
        app, ["report", "-c", str(file), "-o", str(tmp_path / "no" / "r.pdf")], env=env
    )
    assert result.exit_code == 1
    assert "cannot write the report to" in result.output
    assert "no folder" in result.output
    result = CliRunner().invoke(app, ["report", "-c", str(file), "--since", "soon"], env=env)
    assert result.exit_code == 1
    assert "`soon` is not a time" in result.output
