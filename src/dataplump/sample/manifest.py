"""The manifest: per table and fault kind, how many rows were spoiled and who catches them.

It is written as JSON next to a SQLite database (``shop.db`` → ``shop.manifest.json``)
or where ``--manifest`` says, and printed by ``dataplump sample create --json``, so a
test can assert that ``_dlq`` / ``_failed`` hold exactly these rows per rule::

    manifest = Manifest.read("shop.manifest.json")
    orders = manifest.tables["orders"]
    orders.by_rule("dlq")        # {"not_null(customer_id)": 41, "max(discount_pct)": 42, ...}
    orders.curated               # rows expected in the curated table
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from dataplump.sample.faults import Outcome

__all__ = ["FaultCount", "Manifest", "TableManifest", "default_manifest_path"]

FORMAT = 1


@dataclass(frozen=True)
class FaultCount:
    """Rows of one fault kind in one table, and who is expected to catch them."""

    kind: str
    column: str
    description: str
    stage: str
    outcome: Outcome
    rule: str | None
    step: str | None
    rows: int


@dataclass(frozen=True)
class TableManifest:
    """One table of the sample."""

    name: str
    rows: int
    first_id: int
    last_id: int
    faults: tuple[FaultCount, ...]

    @property
    def faulty(self) -> int:
        """Rows with a fault (each has exactly one)."""
        return sum(f.rows for f in self.faults)

    def rows_to(self, outcome: Outcome) -> int:
        """Rows expected to end in ``dlq``, ``failed`` or (after cleaning) the curated table."""
        return sum(f.rows for f in self.faults if f.outcome == outcome)

    def by_rule(self, outcome: Outcome) -> dict[str, int]:
        """Rows per rule label expected in ``dlq`` or ``failed`` (kinds with rows only)."""
        found: dict[str, int] = {}
        for f in self.faults:
            if f.outcome == outcome and f.rule and f.rows:
                found[f.rule] = found.get(f.rule, 0) + f.rows
        return found

    @property
    def curated(self) -> int:
        """Rows expected in the curated table: all but the rejected ones."""
        return self.rows - self.rows_to("dlq") - self.rows_to("failed")


@dataclass(frozen=True)
class Manifest:
    """What ``sample create`` built."""

    url: str
    """The database, password masked."""
    seed: int
    orders: int
    dirty: float
    now: str
    """The instant timestamps were placed around (ISO, UTC): future dates lie after it."""
    seconds: float
    tables: dict[str, TableManifest] = field(default_factory=dict)
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, table in self.tables.items():
            data["tables"][name]["expected"] = {
                "dlq": table.rows_to("dlq"),
                "failed": table.rows_to("failed"),
                "cleaned": table.rows_to("cleaned"),
                "curated": table.curated,
            }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        tables = {
            name: TableManifest(
                name=name,
                rows=t["rows"],
                first_id=t["first_id"],
                last_id=t["last_id"],
                faults=tuple(FaultCount(**f) for f in t["faults"]),
            )
            for name, t in data["tables"].items()
        }
        fields = {k: data[k] for k in ("url", "seed", "orders", "dirty", "now", "seconds")}
        return cls(**fields, tables=tables, format=data.get("format", FORMAT))

    @classmethod
    def read(cls, path: Path | str) -> Manifest:
        return cls.from_dict(json.loads(Path(path).read_text()))


def default_manifest_path(url: str) -> Path:
    """``shop.db`` → ``shop.manifest.json`` beside it; a server database ``shop`` →
    ``shop.manifest.json`` in the current folder."""
    parsed = make_url(url)
    database = parsed.database or "sample"
    if parsed.get_backend_name() == "sqlite" and database != ":memory:":
        path = Path(database)
        return path.with_name(path.stem + ".manifest.json")
    return Path(f"{Path(database).name}.manifest.json")
