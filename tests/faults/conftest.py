"""Fixtures of the fault suites."""

from __future__ import annotations

import pytest

from tests.support.running import kill_seed


@pytest.fixture
def seed() -> int:
    """The seed of this test's random faults: kill moments, which broker dies (printed;
    ``DATAPLUMP_KILL_SEED`` replays one)."""
    return kill_seed()
