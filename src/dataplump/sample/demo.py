"""The folder ``dataplump demo`` works in: the shop pipeline, its database, lake and broker.

The shop pipeline (``examples/shop`` in the repository, ``dataplump/sample/shop`` in an
installed wheel) is copied into the folder and pinned to it: the SQLite database beside
it, the managed broker on the chosen port, no ``${KAFKA_BOOTSTRAP_SERVERS}`` escape to
another cluster. A marker file says the folder is a demo's, so a second ``demo`` may
empty it (stopping its broker first) and a folder of the user's is never touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from dataplump.sample.errors import SampleError

MARKER = ".dataplump-demo"
"""File that marks a folder as made by ``dataplump demo``."""
PIPELINE_FILES = ("dataplump.yaml", "steps.py", "contracts")
"""What a demo folder holds of the shop pipeline."""
DATABASE = "shop.db"
KAFKA_PORT = 9092
"""The demo's broker port when it is free (another free one otherwise)."""
KAFKA_DATA = ".dataplump/kafka"
"""The managed broker's data folder, relative to the pipeline file (as in the shop's)."""

_PINS = {
    # line of the shop pipeline -> what the demo's copy says instead ({db}, {port})
    "  url: ${SHOP_DB_URL:-sqlite:///shop.db}": "  url: sqlite:///{db}",
    "  bootstrap_servers: ${KAFKA_BOOTSTRAP_SERVERS:-}": "  # the managed broker only",
    "    port: 9092": "    port: {port}",
}


@dataclass(frozen=True)
class DemoFolder:
    """Paths of a prepared demo folder."""

    root: Path
    config: Path
    database: Path
    kafka_port: int

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    def report(self, suffix: str) -> Path:
        return self.root / f"report.{suffix}"


def shop_pipeline() -> Path:
    """The folder of the shop pipeline: packaged in a wheel, ``examples/shop`` in a clone."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "shop", here.parents[2] / "examples" / "shop"):
        if (candidate / "dataplump.yaml").is_file():
            return candidate
    raise SampleError("the shop pipeline is missing from this installation (reinstall dataplump)")


def kafka_data_dir(root: Path) -> Path:
    """The managed broker's data folder of the demo in ``root``."""
    return root / KAFKA_DATA


def prepare(root: Path) -> DemoFolder:
    """Empty ``root`` of a previous demo (or create it) and copy the shop pipeline in.

    Refuses a folder that holds anything but a demo. A previous demo's broker is
    stopped first.
    """
    from dataplump.services.kafka import KafkaManager, free_port, port_is_free

    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise SampleError(f"{root} is a file; choose a folder for the demo with --dir")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise SampleError(f"{root} is not empty and not a demo folder; choose another with --dir")
    if root.is_dir():
        KafkaManager(kafka_data_dir(root)).down()
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("made by `dataplump demo`; the next demo empties this folder\n")
    source = shop_pipeline()
    for name in PIPELINE_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, root / name)
    folder = DemoFolder(
        root=root,
        config=root / "dataplump.yaml",
        database=root / DATABASE,
        kafka_port=KAFKA_PORT if port_is_free(KAFKA_PORT) else free_port(),
    )
    folder.config.write_text(pin(folder.config.read_text(), folder.database, folder.kafka_port))
    return folder


def pin(text: str, database: Path, kafka_port: int) -> str:
    """The shop pipeline's text with the demo's database and broker port written in."""
    lines = text.splitlines(keepends=True)
    for original, pinned in _PINS.items():
        at = [i for i, line in enumerate(lines) if line.rstrip("\n") == original]
        if len(at) != 1:
            raise SampleError(
                f"the shop pipeline has {len(at)} line(s) `{original.strip()}` where the demo"
                " expects one; the packaged pipeline and the demo disagree"
            )
        lines[at[0]] = pinned.format(db=database, port=kafka_port) + "\n"
    return "".join(lines)
