"""Schemas of records, published in the producing transaction and resolved by id."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from dataplump.bus.kafka import Producer
from dataplump.bus.schemas import SchemaRegistry, UnknownSchemaError, schema_id

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ORDERS = pa.schema(
    [
        ("id", pa.int64()),
        ("amount", pa.decimal128(10, 2)),
        ("at", pa.timestamp("us", "UTC")),
        ("tags", pa.list_(pa.string())),
    ]
)


def test_a_committed_schema_resolves_in_another_process_view(kafka_bootstrap: str) -> None:
    pipeline = f"s{uuid.uuid4().hex[:8]}"
    writer = SchemaRegistry(kafka_bootstrap, pipeline)
    writer.ensure_topic()
    producer = Producer(kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    with producer.transaction():
        sid = writer.publish(producer, ORDERS.with_metadata({"source": "orders"}))
    aborted = pa.schema([("id", pa.int32())])
    producer.begin()
    writer.publish(producer, aborted)
    producer.flush()
    producer.abort()

    reader = SchemaRegistry(kafka_bootstrap, pipeline)
    assert sid == schema_id(ORDERS)
    assert reader.get(sid).equals(ORDERS)
    with pytest.raises(UnknownSchemaError, match=schema_id(aborted)):
        reader.get(schema_id(aborted))
