"""Config tests run without the developer's DATAPLUMP__* overrides or DATAPLUMP_CONFIG."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DATAPLUMP"):
            monkeypatch.delenv(name)
