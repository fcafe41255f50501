"""A consumer's poll of about so many rows, whichever framing its records use."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, Message

from dataplump.bus.frames import rows_in
from dataplump.bus.kafka import consume_batch
from dataplump.config import PipelineConfig


class RowPoll:
    """Polls of about ``rows`` rows (``--max-records``).

    A record of the ``row`` framing holds one row: a poll asks for ``rows`` records. A
    frame (``kafka.topic.framing: arrow``) holds up to a source batch, so asking for
    ``rows`` records could bring a thousand times the rows; and a topic may mix frames
    with single rows (the loader reads dead-letter records too, ``replay`` writes rows
    among frames). With frames, a poll asks for ``rows`` over the largest frame seen
    (at first ``largest_frame``, the largest batch a frame can hold), then for what the
    rows still missing allow, from what the consumer holds already, until it has
    ``rows`` rows or the consumer holds nothing more.
    """

    def __init__(self, rows: int, *, framed: bool, largest_frame: int) -> None:
        self.rows = rows
        self.framed = framed
        self._per_record = max(1, largest_frame)
        """Rows of the largest frame seen (until one is seen, of the largest possible)."""
        self._seen = False

    @classmethod
    def of(cls, config: PipelineConfig, tables: Sequence[str], rows: int) -> RowPoll:
        """Polls of ``rows`` rows of the topics of ``tables``: a frame holds at most the
        rows of one source batch (``batch_size``)."""
        largest = max((config.tables[t].batch_size for t in tables), default=1)
        return cls(rows, framed=config.kafka.topic.framing == "arrow", largest_frame=largest)

    def poll(self, client: Consumer, timeout: float) -> list[Message]:
        """The next poll's records, waiting up to ``timeout`` seconds for the first."""
        if not self.framed:
            return consume_batch(client, self.rows, timeout)
        messages = consume_batch(client, self._ask(self.rows), timeout)
        held = self._count(messages)
        while messages and held < self.rows:
            more = consume_batch(client, self._ask(self.rows - held), 0)
            if not more:
                break
            messages += more
            held += self._count(more)
        return messages

    def _ask(self, rows: int) -> int:
        return max(1, rows // self._per_record)

    def _count(self, messages: list[Message]) -> int:
        counts = list(map(rows_in, messages))
        largest = max(counts, default=1)
        if largest > 1:
            self._per_record = largest if not self._seen else max(self._per_record, largest)
            self._seen = True
        return sum(counts)
