"""The worked examples of the docs, run as written: the first ```bash block after a page's
"## A worked example", in bash with the virtualenv's `dataplump` on PATH and the managed
broker on a free port instead of the docs' 39092."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).parents[2] / "docs"
DOCS_KAFKA_PORT = "39092"
"""The broker port the docs' examples use."""


def worked_example(page: str) -> str:
    """The first ```bash block after the heading "## A worked example" of ``docs/page``."""
    text = (DOCS / page).read_text()
    section = text[text.index("## A worked example") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no bash block in the worked example of docs/{page}"
    return match.group(1)


def yaml_block(page: str, heading: str) -> str:
    """The first ```yaml block after the heading ``heading`` (e.g. "## Kafka over ...") of
    ``docs/page``: for tests that run a page's config snippet as written."""
    text = (DOCS / page).read_text()
    section = text[text.index(f"\n{heading}\n") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no yaml block after {heading!r} in docs/{page}"
    return match.group(1)


def script_env() -> dict[str, str]:
    """A user's shell: no DataPlump overrides or shop URL, `dataplump` on PATH, plain output."""
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAPLUMP", "SHOP_DB"))}
    return env | {"PATH": f"{bin_dir}:{env['PATH']}", "NO_COLOR": "1", "COLUMNS": "200"}


def run_script(
    script: str, folder: Path, kafka_port: int | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``bash -euo pipefail`` in ``folder`` (39092 -> ``kafka_port``)."""
    if kafka_port is not None:
        script = script.replace(DOCS_KAFKA_PORT, str(kafka_port))
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kafka_down(config: str, folder: Path, kafka_port: int) -> None:
    """Stop the managed broker an example started (also when it failed half way)."""
    script = f"export DATAPLUMP__KAFKA__MANAGED__PORT={kafka_port}\n"
    script += f"dataplump kafka down -c {config} || true\n"
    run_script(script, folder, timeout=120)
