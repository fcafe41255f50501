"""Scenario 3's Quix Streams app: the transform of ``bench/scenario_transform.py``, by hand.

    .cache/bench-venv/bin/python bench/peers/quix_transform.py BOOTSTRAP ACTIVE OUT FAILED \
        EXPECTED STATE_DIR [at-least-once|exactly-once]

Reads ``ACTIVE`` (DataPlump's JSON rows, decimals as strings) in a consumer group of its
own from the earliest offset, drops the rows the SQL's ``WHERE`` drops, adds the same
derived columns with exact ``Decimal`` arithmetic, and sends each row to ``OUT`` when it
passes the two rules, to ``FAILED`` otherwise; the key is the input record's key. It
stops once ``EXPECTED`` input records are processed (Quix's ``on_message_processed``),
which commits the last checkpoint. Quix's default guarantee is at-least-once; the last
argument picks exactly-once (a Kafka transaction per checkpoint) instead.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

MAX_QUANTITY = Decimal("45")
FLAG_STATUS = frozenset({"AF", "NF", "NO", "RF"})


def keep(row: dict[str, Any]) -> bool:
    """The SQL's ``WHERE l_shipmode <> 'AIR'``."""
    return bool(row["l_shipmode"] != "AIR")


def derive(row: dict[str, Any]) -> dict[str, Any]:
    """The SQL's select list: every column (``*``), then disc_price, charge, flag_status."""
    out = dict(row)
    price = Decimal(row["l_extendedprice"])
    disc_price = price * (1 - Decimal(row["l_discount"]))
    out["disc_price"] = str(disc_price)
    out["charge"] = str(disc_price * (1 + Decimal(row["l_tax"])))
    out["flag_status"] = row["l_returnflag"] + row["l_linestatus"]
    return out


def valid(row: dict[str, Any]) -> bool:
    """The output contract's two rules: l_quantity at most 45, flag_status a known pair."""
    return Decimal(row["l_quantity"]) <= MAX_QUANTITY and row["flag_status"] in FLAG_STATUS


def main(
    bootstrap: str,
    active: str,
    out: str,
    failed: str,
    expected: str,
    state_dir: str,
    guarantee: str = "at-least-once",
) -> None:
    from quixstreams import Application  # type: ignore[import-not-found]  # the bench env

    started = time.perf_counter()  # after the import, like every peer's
    done = 0
    app: Application

    def processed(_topic: str, _partition: int, _offset: int) -> None:
        nonlocal done
        done += 1
        if done >= int(expected):
            app.stop()

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        processing_guarantee=guarantee,
        state_dir=state_dir,
        on_message_processed=processed,
        loglevel="WARNING",
    )
    source = app.topic(active, key_deserializer="bytes", value_deserializer="json")
    sink = app.topic(out, key_serializer="bytes", value_serializer="json")
    rejects = app.topic(failed, key_serializer="bytes", value_serializer="json")
    sdf = app.dataframe(source).filter(keep).apply(derive)
    sdf[sdf.apply(valid)].to_topic(sink)
    sdf[sdf.apply(lambda row: not valid(row))].to_topic(rejects)

    app.run()
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": done, "seconds": seconds, "guarantee": guarantee}))


if __name__ == "__main__":
    main(*sys.argv[1:])
