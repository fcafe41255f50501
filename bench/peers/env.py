"""The bench's own environment (``.cache/bench-venv``), with the peers at pinned versions.

Peers are installed apart from the project's ``.venv`` so their dependencies never
change what DataPlump runs with, and so a version bump of a peer is one line here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "bench-venv"
UV = ROOT / ".cache" / "bootstrap" / "bin" / "uv"

PINS = (
    "tpchgen-cli==4.0.0",
    "dlt[deltalake,sql_database]==1.31.0",
    "connectorx==0.4.6",
    "deltalake==1.6.6",
    "polars==2.1.0",
    "psycopg[binary]==3.3.9",  # SQLAlchemy's driver for dlt's table reflection
    "quixstreams==3.28.1",  # scenario 3
)
"""What the peers run with; ``.cache/bench-venv/pins.txt`` records the last install."""


def python() -> Path:
    return VENV / "bin" / "python"


def tpchgen() -> Path:
    return VENV / "bin" / "tpchgen-cli"


def ensure() -> Path:
    """Create or update the environment when its pins changed; return its python.

    Uses the uv that ``scripts/setup.sh`` bootstraps; fails with that command when
    it is missing.
    """
    stamp = VENV / "pins.txt"
    wanted = "\n".join(PINS) + "\n"
    if stamp.exists() and stamp.read_text() == wanted and python().exists():
        return python()
    if not UV.exists():
        raise SystemExit(f"{UV} is missing: run `bash scripts/setup.sh` first")
    if not python().exists():
        subprocess.run([str(UV), "venv", "-q", "-p", "3.11", str(VENV)], check=True)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(python()), *PINS], check=True)
    stamp.write_text(wanted)
    return python()
