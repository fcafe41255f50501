"""Every example in docs/contracts.md runs.

A ``yaml`` block starting with ``# contract`` is loaded as the contract of table
``orders``; one starting with ``# pipeline file`` is loaded with ``load_config``; the
``python`` blocks run in order in one namespace where ``contract`` is the last contract
loaded (blocks starting with ``# not run`` are skipped).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from dataplump.config import load_config
from dataplump.contracts import Contract
from tests.unit.contracts.helpers import ROOT

DOC = ROOT / "docs" / "contracts.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_docs_examples_run(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    ran = {"contract": 0, "pipeline": 0, "python": 0}
    for language, text in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        if language == "yaml" and text.startswith("# contract"):
            namespace["contract"] = Contract.from_config("orders", YAML(typ="safe").load(text))
            ran["contract"] += 1
        elif language == "yaml" and text.startswith("# pipeline file"):
            path = tmp_path / "dataplump.yaml"
            path.write_text(text, encoding="utf-8")
            assert load_config(path, env={}).contract("customers") is not None
            ran["pipeline"] += 1
        elif language == "python" and not text.startswith("# not run"):
            exec(compile(text, f"{DOC}:python", "exec"), namespace)  # noqa: S102
            ran["python"] += 1
    assert ran == {"contract": 14, "pipeline": 1, "python": 14}
