"""``dataplump run`` as a process for fault tests: a pipeline file over the ``orders`` tables of
:mod:`tests.support.extraction`, its stage processes, a kill of the whole tree, and
independent readers of what landed (polars on the Delta tables, the ledger).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import psutil  # type: ignore[import-untyped]

from dataplump.config import load_config
from dataplump.pipeline.ledger import TableLedger, read_ledger
from tests.support.cli import Command
from tests.support.extraction import is_valid, orders_table
from tests.support.loading import key_ids, twice


def write_run_pipeline(
    folder: Path,
    *,
    url: str,
    bootstrap: str,
    tables: Iterable[str] = ("orders",),
    mode: str = "append",
    batch_size: int = 500,
    notify: Mapping[str, Any] | None = None,
    name: str | None = None,
    framing: str = "row",
) -> Path:
    """A pipeline file in ``folder``: incremental ``tables`` of ``url`` into a Delta lake
    (``mode``: append shows a row loaded twice as a duplicate), polling the source every
    second, Kafka sessions of 6 s so a killed consumer's partitions come back quickly;
    ``framing`` is ``kafka.topic.framing``."""
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "pipeline": {"name": name or f"run{uuid.uuid4().hex[:8]}"},
        "source": {"url": url},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic": {"framing": framing},
            "extra": {"session.timeout.ms": "6000"},
        },
        "extract": {"poll_interval": "1s"},
        "sinks": {"lake": {"kind": "delta", "path": str(folder / "lake"), "mode": mode}},
        "tables": {
            t: orders_table("sqlite", mode="incremental", batch_size=batch_size) for t in tables
        },
    }
    if notify is not None:
        config["notify"] = dict(notify)
    path = folder / "dataplump.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


class Run(Command):
    """One ``dataplump run`` process (forever unless ``--once`` is passed), no metrics port."""

    def __init__(self, config: Path, *args: str, logs: Path, label: str = "run") -> None:
        super().__init__(
            "run",
            "-c",
            str(config),
            "--metrics-port",
            "0",
            *args,
            logs=logs,
            cwd=config.parent,
            label=label,
        )

    def stages(self) -> dict[str, psutil.Process]:
        """The live stage processes by stage name (each names itself ``dp-<stage>``)."""
        found: dict[str, psutil.Process] = {}
        try:
            kids = psutil.Process(self.process.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return found
        for kid in sorted(kids, key=lambda p: p.create_time()):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                if kid.status() == psutil.STATUS_ZOMBIE:
                    continue
                stage = _stage_of(kid)
                if stage is not None:
                    found[stage] = kid
        return found

    def kill_everything(self) -> int:
        """SIGKILL the supervisor and every process under it, at once: the supervisor is
        stopped first (SIGSTOP) so it cannot start a stage between the listing and the
        kill. Returns how many processes were killed."""
        try:
            root = psutil.Process(self.process.pid)
            root.send_signal(signal.SIGSTOP)
            victims = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            victims = []
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=10)
        self.process.wait()
        return len(victims)


def _stage_of(process: psutil.Process) -> str | None:
    """The stage a ``spawn`` child runs: its process name is ``dp-<stage>``
    (:func:`dataplump.pipeline.stages.run_stage` names it)."""
    with contextlib.suppress(psutil.Error):
        name: str = process.name()
        if name.startswith("dp-"):
            return name[3:]
    return None


def kill_all(processes: Iterable[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def lake_ids(lake: Path, table: str = "orders") -> list[int]:
    """Ids in the curated Delta table, read by polars (not by DataPlump's reader)."""
    path = lake / table
    if not (path / "_delta_log").exists():
        return []
    return pl.read_delta(str(path), columns=["id"])["id"].to_list()


def dlq_ids(lake: Path, table: str = "orders") -> list[int]:
    """Source ids of ``table``'s records in the ``_dlq`` ops table."""
    path = lake / "_dlq"
    if not (path / "_delta_log").exists():
        return []
    frame = pl.read_delta(str(path), columns=["table", "key"])
    return key_ids(frame.filter(pl.col("table") == table)["key"].to_list())


def check_exact(
    config: Path, bootstrap: str, ids: set[int], report: str = "", table: str = "orders"
) -> TableLedger:
    """Every source row ``ids`` exactly once: valid ones in the curated table, invalid ones
    in ``_dlq``, none twice, none missing, and a ledger with no gap and nothing in flight."""
    lake = Path(load_config(config).sinks["lake"].path)
    loaded, dead = lake_ids(lake, table), dlq_ids(lake, table)
    valid = {i for i in ids if is_valid(i)}
    assert not twice(loaded), f"{table}: rows twice in the lake: {twice(loaded)} {report}"
    assert not twice(dead), f"{table}: records twice in _dlq: {twice(dead)} {report}"
    missing, extra = sorted(valid - set(loaded))[:10], sorted(set(loaded) - valid)[:10]
    assert (missing, extra) == ([], []), f"{table}: lake missing, extra {report}"
    missing, extra = sorted(ids - valid - set(dead))[:10], sorted(set(dead) - (ids - valid))[:10]
    assert (missing, extra) == ([], []), f"{table}: _dlq missing, extra {report}"
    ledger = read_ledger(load_config(config), bootstrap)[table]
    counts = (ledger.read, ledger.in_dlq, ledger.in_failed, ledger.loaded, ledger.gap)
    assert counts == (len(ids), len(ids) - len(valid), 0, len(valid), 0), (
        f"{table}: ledger (read, dlq, failed, loaded, gap) {counts}; {ledger} {report}"
    )
    assert ledger.in_flight_total == 0, f"{table}: in flight {ledger.in_flight} {report}"
    return ledger


def wait_until(check: Callable[[], bool], what: str, timeout: float, run: Command) -> float:
    """Poll ``check`` until true; fail if ``run`` ends or ``timeout`` passes. Returns the
    seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        if run.process.poll() is not None:
            raise AssertionError(f"run ended while waiting for {what}:\n{run.output}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} after {timeout:.0f}s:\n{run.output[-5000:]}")


def kill_seed() -> int:
    """The seed of a test's kill moments (``DATAPLUMP_KILL_SEED`` replays one)."""
    import random

    value = int(os.environ.get("DATAPLUMP_KILL_SEED") or random.randrange(2**32))
    print(f"kill seed: {value} (replay with DATAPLUMP_KILL_SEED={value})")
    return value
