"""``dataplump notify``: deliver a pipeline's alerts to its channels (log, webhook, Slack, mail)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

from dataplump.cli.output import console, err_console, fail
from dataplump.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_FILE, ConfigError, load_config
from dataplump.config import models as config_models
from dataplump.errors import DataPlumpError, TransientBusError
from dataplump.logs import setup_logging
from dataplump.notify.incidents import GroupingPolicy
from dataplump.notify.service import Notifier, RetryPolicy, RunReport

app = typer.Typer(
    help=(
        "Deliver the pipeline's alerts to its channels.\n\n"
        "Reads `<pipeline>.alerts` as consumer group `<pipeline>.notify`, groups events into "
        "incidents and notifies every channel of `notify.channels` (and the log, always). "
        "Runs until Ctrl-C or SIGTERM; with --once, tells what is on the topic now and exits.\n\n"
        "Exit status with --once: 0 all delivered, 3 some channel still owes notifications "
        "(kept, retried on the next run), 1 error.\n\n"
        "Example: `dataplump notify -c examples/dataplump.yaml --once`"
    ),
    invoke_without_command=True,
    subcommand_metavar="",
)

ConfigOption = typer.Option(
    Path(DEFAULT_CONFIG_FILE),
    "--config",
    "-c",
    envvar=CONFIG_ENV_VAR,
    help="The pipeline file: pipeline name, Kafka, and `notify.channels`.",
    show_default=True,
)
UNDELIVERED_EXIT = 3


def parse_duration(text: str) -> float:
    """``30s``, ``5m``, ``4h``, ``1d``, ``250ms`` or plain seconds, as seconds."""
    try:
        return config_models.parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _duration(default: str | None, flag: str, help_text: str) -> float | None:
    option: float | None = typer.Option(
        default, flag, parser=parse_duration, metavar="DURATION", help=help_text
    )
    return option


def _setup_logging(verbose: bool) -> None:
    setup_logging(level=logging.DEBUG if verbose else logging.INFO)
    # librdkafka retries on its own (e.g. while a coordinator loads); only errors matter here.
    logging.getLogger("dataplump.kafka").setLevel(logging.INFO if verbose else logging.ERROR)


def _report(report: RunReport) -> None:
    delivered = ", ".join(f"{name} {n}" for name, n in report.delivered.items())
    malformed = f", {report.malformed} malformed skipped" if report.malformed else ""
    console.print(
        f"notify: {report.events} events{malformed}, {report.notifications} notifications, "
        f"{report.open_incidents} open incidents; delivered: {delivered}",
        markup=False,
        soft_wrap=True,
    )
    for name, count in report.pending.items():
        if count:
            error = report.errors.get(name, "not attempted")
            err_console.print(
                f"{name}: {count} notification(s) not delivered, kept for the next run"
                f" (last error: {error})",
                markup=False,
                soft_wrap=True,
                style="red",
            )


@app.callback(invoke_without_command=True)
def notify(
    config: Path = ConfigOption,
    once: bool = typer.Option(
        False,
        "--once",
        help="Tell what is on the topic now (no group wait), deliver, and exit.",
    ),
    bootstrap: str | None = typer.Option(
        None,
        "--bootstrap",
        help="Kafka bootstrap servers, instead of the pipeline file's (or the managed broker's).",
    ),
    group_wait: float | None = _duration(
        None,
        "--group-wait",
        "A new incident waits this long for more events before paging."
        " [default: `notify.grouping.group_wait`, 30s]",
    ),
    group_interval: float | None = _duration(
        None,
        "--group-interval",
        "At most one update per incident per this interval."
        " [default: `notify.grouping.group_interval`, 5m]",
    ),
    repeat_interval: float | None = _duration(
        None,
        "--repeat-interval",
        "Notify an open incident again after this long."
        " [default: `notify.grouping.repeat_interval`, 4h]",
    ),
    resolve_after: float | None = _duration(
        None,
        "--resolve-after",
        "An incident without events for this long is resolved."
        " [default: `notify.grouping.resolve_after`, 1h]",
    ),
    retry_for: float | None = _duration(
        "60s",
        "--retry-for",
        "With --once: retry a failing channel this long, then keep what it owes for the next run.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each delivery."),
) -> None:
    """Deliver the pipeline's alerts to its channels."""
    _setup_logging(verbose)
    try:
        pipeline = load_config(config)
    except ConfigError as exc:
        fail(f"{exc} (run `dataplump config check -c {config}`)")
    grouping = pipeline.notify.grouping
    try:
        policy = GroupingPolicy(
            grouping.group_wait if group_wait is None else group_wait,
            grouping.group_interval if group_interval is None else group_interval,
            grouping.repeat_interval if repeat_interval is None else repeat_interval,
            grouping.resolve_after if resolve_after is None else resolve_after,
        )
    except ValueError as exc:
        fail(str(exc))
    retry = RetryPolicy(give_up_after=retry_for if once else None)
    notifier = Notifier.from_config(pipeline, bootstrap=bootstrap, policy=policy, retry=retry)
    logging.getLogger("dataplump.notify").info("notify %s: %s", pipeline.name, notifier.describe())
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _signals()}
    try:
        report = notifier.run(once=once, stop=stop)
    except TransientBusError as exc:
        fail(f"{exc} (is Kafka at {notifier.bootstrap} up? `dataplump kafka status -c {config}`)")
    except DataPlumpError as exc:
        fail(str(exc))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        notifier.close()
    _report(report)
    if once and not report.complete:
        raise typer.Exit(UNDELIVERED_EXIT)


def _signals() -> list[signal.Signals]:
    return [signal.SIGINT, signal.SIGTERM]


if __name__ == "__main__":  # pragma: no cover - `python -m dataplump.cli.notify_cmd`
    app(prog_name="dataplump notify")
