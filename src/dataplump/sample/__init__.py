"""A realistic, deliberately dirty shop database to run pipelines on.

``dataplump sample create`` builds ``customers``, ``products``, ``orders`` and
``order_items`` in SQLite, PostgreSQL or MariaDB, spoils a share of the rows with the
faults real data has (one fault per spoiled row, each kind counted), and writes a
manifest saying, per table and kind, how many rows and which contract rule or cleaning
step is expected to catch them. ``dataplump sample grow`` keeps inserting and updating
rows at a rate, with the same fault mix. ``examples/shop`` is the pipeline made for it.

Modules, one job each:

- :mod:`.schema`: the tables (SQLAlchemy Core), their keys and soft references;
- :mod:`.generate`: clean rows, vectorized (Faker fills small pools only);
- :mod:`.faults`: the fault kinds, who catches each, and :func:`~.faults.inject`;
- :mod:`.write`: bulk inserts per database (COPY for PostgreSQL);
- :mod:`.manifest`: the manifest file;
- :mod:`.create`: ``create_sample``; :mod:`.grow`: ``grow``.

See ``docs/sample.md``.
"""

from __future__ import annotations

from dataplump.sample.create import Sizes, create_sample
from dataplump.sample.errors import SampleError
from dataplump.sample.faults import FAULTS, KINDS
from dataplump.sample.manifest import FaultCount, Manifest, TableManifest, default_manifest_path

__all__ = [
    "FAULTS",
    "KINDS",
    "FaultCount",
    "Manifest",
    "SampleError",
    "Sizes",
    "TableManifest",
    "create_sample",
    "default_manifest_path",
]
