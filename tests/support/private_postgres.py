"""A PostgreSQL server of one test only, for tests that stop and start it: the shared
server of the session must stay up for every other test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dataplump.services.kafka import free_port
from dataplump.testing.databases import PostgresServer


@contextmanager
def private_postgres(tag: str, **options: Any) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server on a free port (``options``: more arguments of
    :class:`PostgresServer`, e.g. its TLS files); purge it (data and all) at the end."""
    # Not under tmp_path: the server's OS user must traverse every parent directory.
    home = Path("/var/tmp") / f"dataplump-{tag}-{uuid.uuid4().hex[:8]}"
    server = PostgresServer(port=free_port(), services_dir=home, **options)
    try:
        server.ensure_running()
        yield server
    finally:
        server.purge()
        shutil.rmtree(home, ignore_errors=True)
