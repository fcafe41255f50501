"""Bad input never kills a stage: every nasty record ends in the failed store or the
dead-letter topic with a precise reason, or the command refuses it in one clear line.

On real Kafka and a real SQLite source, nothing mocked:

- records put straight on a ``.active`` topic that no extraction could have written
  (the corpus ``tests/cases/bad_records/active.json``, plus a truncated record, 100,000
  nested arrays and records close to ``message.max.bytes`` whose failed-store record
  would be over it) each end once in the failed store with their step and rule, the
  records around them are all processed as usual, and ``dataplump transform --once``
  exits 0 without a traceback; a record over the broker's limit is refused to its
  producer, and the topic never holds it;
- nasty source rows (NULL and duplicate primary keys, NUL characters, text that is no
  UTF-8, NaN and infinite floats, values too large for a Kafka record, a cursor that
  goes back, a column added, dropped or retyped between runs) end on ``.active`` or in
  the DLQ with a precise reason, and no source row is lost: source rows = active + dlq.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from dataplump.bus.kafka import Headers, Producer
from dataplump.bus.schemas import HEADER_SCHEMA
from dataplump.config import load_config
from dataplump.errors import BusError
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from tests.support.topics import headers_of, read_committed, value_of
from tests.support.transformation import Expected, run_transform, write_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

CASES = Path(__file__).parents[1] / "cases" / "bad_records"
ROWS = 300
GOOD = (
    '{{"id": {id}, "customer": "  cust1 ", "amount": "1.00", "status": "{status}",'
    ' "ordered_on": "01/03/2024"}}'
)


def _corpus() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((CASES / "active.json").read_text())
    return entries


def _built() -> list[dict[str, Any]]:
    """The nasty records too large or too deep to write in the corpus file."""
    good = GOOD.format(id=-100, status="new").encode()
    built: list[dict[str, Any]] = [
        {
            "name": "truncated record",
            "id": -100,
            "raw": good[: len(good) // 2],
            "step": "decode",
            "rules": "malformed_record",
            "message": "error parsing line",
        },
        {
            "name": "100,000 nested arrays",
            "id": -101,
            "raw": b"[" * 100_000 + b"]" * 100_000,
            "step": "decode",
            "rules": "malformed_record",
            "message": "DepthLimitExceeded",
        },
        {
            "name": "objects nested 5,000 deep in a column",
            "id": -102,
            "raw": b'{"id": -102, "customer": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
            "step": "decode",
            "rules": "malformed_record",
            "message": "DepthLimitExceeded",
        },
        {
            # The reason quotes the 600 kB text, and the failed record holds it again:
            # together over message.max.bytes, so it is cut to fit.
            "name": "600 kB of text that is no JSON object",
            "id": -103,
            "raw": b'"x' + b'\\"' * 300_000 + b'"',
            "step": "decode",
            "rules": "malformed_record,record_too_large",
            "message": "expected to contain JSON object",
        },
        {
            # Decodes; its 990 kB status breaks the output contract, and the failed
            # record (input + output + the value in the reason) would be 3 MB.
            "name": "990 kB status",
            "id": -104,
            "raw": GOOD.format(id=-104, status="x" * 990_000).encode(),
            "step": "output_contract",
            "rules": "accepted_values(status),record_too_large",
            "message": "is not one of the accepted values",
        },
        {
            "name": "a key that is no JSON, on a value that is none either",
            "id": None,
            "key": b"\xffno json key",
            "raw": b"no json value",
            "step": "decode",
            "rules": "malformed_record",
            "message": "error parsing line",
        },
        {
            # Its failed record would be over message.max.bytes: it is kept without its key.
            "name": "a 998 kB key",
            "id": None,
            "key": b"k" * 998_500,
            "raw": b"no json value",
            "step": "decode",
            "rules": "malformed_record,record_too_large",
            "message": "error parsing line",
        },
        {
            "name": "a tombstone (no value)",
            "id": -105,
            "raw": None,
            "step": "decode",
            "rules": "malformed_record",
            "message": "has no value",
        },
        {
            "name": "schema header that is no UTF-8",
            "id": -106,
            "schema": b"\xff\xfe",
            "raw": good.replace(b"-100", b"-106"),
            "step": "decode",
            "rules": "malformed_record",
            "message": "is not in",
        },
    ]
    built += [
        {
            # One key twice: the older version is superseded (filtered), the newer processed.
            "name": f"the same key twice ({n} of 2)",
            "id": -107,
            "raw": GOOD.format(id=-107, status=status).encode(),
            "ends": "filtered" if n == 1 else "processed",
        }
        for n, status in ((1, "new"), (2, "paid"))
    ]
    return built


def _value(entry: dict[str, Any]) -> bytes | None:
    if "raw" in entry:
        raw: bytes | None = entry["raw"]
        return raw
    if "value_hex" in entry:
        return bytes.fromhex(entry["value_hex"])
    return str(entry["value"]).encode("utf-8", errors="surrogatepass")


def _schema_header(entry: dict[str, Any], good: bytes) -> Headers:
    schema = entry.get("schema", "good")
    if schema == "none":
        return []
    if schema == "good":
        return [(HEADER_SCHEMA, good)]
    return [(HEADER_SCHEMA, schema if isinstance(schema, bytes) else schema.encode())]


def _key(entry: dict[str, Any]) -> bytes:
    key: bytes = entry.get("key") or b'{"id":%d}' % entry["id"]
    return key


def _envelopes(messages: list[Message]) -> dict[bytes, list[dict[str, Any]]]:
    by_key: dict[bytes, list[dict[str, Any]]] = {}
    for message in messages:
        envelope = value_of(message)
        envelope["_headers"] = headers_of(message)
        by_key.setdefault(message.key() or b"", []).append(envelope)
    return by_key


def test_nasty_active_records_end_in_the_failed_store_and_the_stage_goes_on(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    path, name = write_pipeline(tmp_path, kafka_bootstrap, rows=ROWS)
    config = load_config(path)
    Extractor(config, kafka_bootstrap).run_once()
    active = topics.active(name, "orders")
    good_schema = headers_of(read_committed(kafka_bootstrap, active)[0])[HEADER_SCHEMA]
    nasty = _corpus() + _built()

    intruder = Producer(
        kafka_bootstrap,
        transactional_id=f"intruder-{uuid.uuid4().hex}",
        extra={"message.max.bytes": "1048000"},
    )
    with intruder.transaction():
        for entry in nasty:
            intruder.produce(
                active, _value(entry), key=_key(entry), headers=_schema_header(entry, good_schema)
            )
    # Over the broker's limit: the producer refuses it, and the topic never holds it.
    with pytest.raises(BusError, match="MSG_SIZE_TOO_LARGE"), intruder.transaction():
        intruder.produce(active, b"x" * 1_100_000, key=b'{"id":-999}')

    result = run_transform(path, "--once", logs=tmp_path / "logs")
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()

    expected = Expected.of(ROWS)
    processed = _envelopes(read_committed(kafka_bootstrap, topics.processed(name, "orders")))
    failed = _envelopes(read_committed(kafka_bootstrap, topics.failed(name)))
    # The extracted records around the nasty ones: each where it belongs, once.
    good_processed = {int(json.loads(k)["id"]) for k in processed if k.startswith(b'{"id":')}
    good_failed = {int(json.loads(k)["id"]) for k in failed if k.startswith(b'{"id":')}
    assert {i for i in good_processed if i > 0} == expected.processed
    assert {i for i in good_failed if i > 0} == expected.failed
    assert all(len(v) == 1 for k, v in processed.items()), "a processed key twice"

    problems = []
    for entry in nasty:
        key = _key(entry) if len(_key(entry)) <= 1024 else b""  # a huge key is not kept
        ends = entry.get("ends", "failed")
        got_failed, got_processed = failed.get(key, []), processed.get(key, [])
        where = f"{entry['name']!r} (key {key[:40]!r})"
        if ends == "failed":
            if len(got_failed) != 1 or got_processed:
                problems.append(
                    f"{where}: {len(got_failed)} failed, {len(got_processed)} processed"
                )
                continue
            [envelope] = got_failed
            rules = envelope["_headers"]["dp.error.rules"].decode()
            message = envelope["reasons"][0]["message"]
            if (envelope["step"], rules) != (entry["step"], entry["rules"]):
                problems.append(f"{where}: step {envelope['step']}, rules {rules}")
            elif entry["message"] not in message:
                problems.append(f"{where}: message {message[:200]!r}")
            elif envelope["step"] == "decode" and envelope["input_text"] is None and _value(entry):
                problems.append(f"{where}: the failed record lost its input")
        elif ends == "processed" and (len(got_processed) != 1 or got_failed):
            problems.append(f"{where}: {len(got_processed)} processed, {len(got_failed)} failed")
        elif ends == "filtered" and got_failed:
            problems.append(f"{where}: filtered on purpose, yet in the failed store")
    assert not problems, "\n".join(problems)
    # Nothing lost: every consumed record is processed, failed or filtered on purpose.
    summary = result.stdout
    consumed = ROWS + len(nasty)
    assert str(consumed) in summary, summary
    failed_total = sum(len(v) for v in failed.values())
    processed_total = sum(len(v) for v in processed.values())
    filtered = len(expected.dropped) + sum(1 for e in nasty if e.get("ends") == "filtered")
    assert processed_total + failed_total + filtered == consumed, summary
