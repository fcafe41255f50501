"""A hostile pipeline file gets clear errors and makes ``dataplump config check`` write
nothing, anywhere: not beside the file, not in the current folder, not where its paths
point (``..`` out of the pipeline folder included).

Every file of ``tests/cases/config/bad`` (malformed YAML, alias bombs, absurd sizes,
contradictions, paths out of the folder...) and a valid file whose lake, Kafka data
folder and report folder lie outside its own folder are checked from a sandbox whose
every file is listed before and after. The messages themselves are the cases'
``.expected`` files (``test_cases.py``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dataplump.cli.config_cmd import app
from tests.unit.config.helpers import CASES, write

BAD = sorted((CASES / "bad").glob("*.yaml"))

OUTSIDE = """\
pipeline: {name: shop}
source: {url: "sqlite:///../outside/demo.db"}
kafka:
  managed: {data_dir: ../outside/kafka}
sinks:
  lake: {kind: delta, path: ../../outside/lake}
present:
  reports:
    - {name: daily, to: ../outside/reports, every: 1d}
tables:
  orders: {primary_key: id, batch_size: 10000000}
"""


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def _check_in_sandbox(
    sandbox: Path,
    pipeline: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str] | None = None,
) -> str:
    """Run ``config check`` on ``pipeline`` from ``sandbox/cwd``; fail if a file appears."""
    cwd = sandbox / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    before = _files(sandbox)
    started = time.monotonic()
    env = {"COLUMNS": "400", **(env or {})}
    result = CliRunner().invoke(app, ["check", "-c", str(pipeline)], env=env)
    assert time.monotonic() - started < 10, "config check took over 10 s"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    created = _files(sandbox) - before
    assert not created, f"config check wrote {sorted(map(str, created))}"
    return result.output


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.stem)
def test_a_bad_file_is_refused_and_nothing_is_written(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "a" / "b" / "pipeline"
    folder.mkdir(parents=True)
    pipeline = folder / "dataplump.yaml"
    shutil.copy(case, pipeline)
    expected = YAML(typ="safe").load(case.with_suffix(".expected"))
    output = _check_in_sandbox(tmp_path, pipeline, monkeypatch, expected.get("env", {}))
    last = output.strip().splitlines()[-1]
    assert "problem" in last, output
    assert "fix and run again" in last, output


def test_paths_out_of_the_folder_are_shown_resolved_and_not_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = write(tmp_path / "a" / "b" / "pipeline", OUTSIDE)
    output = _check_in_sandbox(tmp_path, pipeline, monkeypatch)
    assert "is valid" in output, output
    assert str(tmp_path / "a" / "outside" / "lake") in output  # resolved, as it will be used
    assert not (tmp_path / "a" / "outside").exists()
    assert not (tmp_path / "a" / "b" / "outside").exists()
