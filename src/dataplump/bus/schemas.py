"""The Arrow schemas of the records on a pipeline's topics, kept in a compacted topic.

Values on the wire are JSON (:mod:`dataplump.bus.records`); their Arrow types travel
beside them. Every record carries the header ``dp.schema``: the id of its schema (16
hex digits of the SHA-256 of the schema's Arrow IPC form), and the compacted topic
``<pipeline>.schemas`` maps each id to the schema. A stage publishes the schema of
its records in every transaction that produces them, so a read_committed consumer
never meets an id it cannot resolve (compaction folds the repeats into one record).
It is the role a schema registry plays for Avro, without another service to run.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

import orjson
import pyarrow as pa

from dataplump.bus.kafka import Producer
from dataplump.errors import TerminalError
from dataplump.pipeline import topics
from dataplump.pipeline.state import ensure_state_topics, read_state

HEADER_SCHEMA = "dp.schema"


class UnknownSchemaError(TerminalError):
    """A record names a schema id that ``<pipeline>.schemas`` does not hold."""


def schema_id(schema: pa.Schema) -> str:
    """The id of ``schema`` (metadata ignored): equal schemas, equal ids."""
    return hashlib.sha256(schema.remove_metadata().serialize().to_pybytes()).hexdigest()[:16]


class SchemaRegistry:
    """Publishes and resolves the schemas of one pipeline's records."""

    def __init__(
        self, bootstrap: str, pipeline: str, *, extra: Mapping[str, str] | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topics.schemas(pipeline)
        self.extra = dict(extra or {})
        self._known: dict[str, pa.Schema] = {}

    def ensure_topic(self, *, replication_factor: int = 1) -> None:
        ensure_state_topics(
            self.bootstrap, [self.topic], replication_factor=replication_factor, extra=self.extra
        )

    def publish(self, producer: Producer, schema: pa.Schema) -> str:
        """Queue ``schema`` in the producer's open transaction; return its id."""
        sid = schema_id(schema)
        self._known.setdefault(sid, schema.remove_metadata())
        arrow = base64.b64encode(schema.remove_metadata().serialize().to_pybytes()).decode()
        producer.produce(self.topic, orjson.dumps({"arrow": arrow}), key=sid.encode())
        return sid

    def get(self, sid: str) -> pa.Schema:
        """The schema of id ``sid``, reading the topic again when it is not known yet."""
        if sid not in self._known:
            for key, value in read_state(self.bootstrap, self.topic, extra=self.extra).items():
                if key not in self._known:
                    self._known[key] = pa.ipc.read_schema(
                        pa.py_buffer(base64.b64decode(value["arrow"]))
                    )
        try:
            return self._known[sid]
        except KeyError:
            raise UnknownSchemaError(
                f"schema {sid!r} is not in {self.topic}: the record was not written by"
                " DataPlump, or the schemas topic was deleted"
            ) from None
