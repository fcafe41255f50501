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
import math
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from dataplump.bus.kafka import Headers, Producer
from dataplump.bus.schemas import HEADER_SCHEMA
from dataplump.config import load_config
from dataplump.errors import BusError
from dataplump.notify.events import decode
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from tests.support.cli import run_command
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


# -- extraction: nasty source rows ------------------------------------------------------

SOURCE_CONTRACT = {
    "version": "1",
    "columns": {
        "id": {"type": "int64", "not_null": True, "unique": True},
        "seq": {"type": "int64", "not_null": True},
        "name": {"type": "string"},
        "price": {"type": "double", "min": 0, "max": 1000},
        "note": {"type": "string"},
    },
}


def _source_pipeline(folder: Path, bootstrap: str, *, mode: str = "full") -> tuple[Path, str]:
    """A SQLite table ``t`` without a primary key constraint (so ids may repeat or be
    NULL) and a pipeline reading it with ``SOURCE_CONTRACT``; returns (file, name)."""
    folder.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(folder / "src.db") as db:
        db.execute("CREATE TABLE t (id INTEGER, seq INTEGER, name TEXT, price REAL, note TEXT)")
    name = f"bx{uuid.uuid4().hex[:8]}"
    table: dict[str, Any] = {"primary_key": "id", "contract": SOURCE_CONTRACT}
    if mode == "incremental":
        table |= {"mode": "incremental", "cursor": "seq"}
    config = {
        "pipeline": {"name": name},
        "source": {"url": f"sqlite:///{folder / 'src.db'}"},
        "kafka": {"bootstrap_servers": bootstrap},
        "tables": {"t": table},
    }
    path = folder / "dataplump.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path, name


def _insert(folder: Path, rows: list[tuple[Any, ...]], sql: str | None = None) -> None:
    with sqlite3.connect(folder / "src.db") as db:
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO t VALUES ({marks})", rows)  # noqa: S608 - test SQL
        if sql:
            db.executescript(sql)


def _extract(path: Path, logs: Path) -> Any:
    return run_command("extract", "-c", str(path), "--once", logs=logs, cwd=path.parent)


def _landed(bootstrap: str, name: str) -> tuple[list[Message], list[Message]]:
    active = read_committed(bootstrap, topics.active(name, "t"))
    dlq = read_committed(bootstrap, topics.dlq(name, "t"))
    return active, dlq


def _rules(message: Message) -> str:
    return headers_of(message)["dp.error.rules"].decode()


def _by_id(messages: list[Message]) -> dict[int, list[Message]]:
    out: dict[int, list[Message]] = {}
    for message in messages:
        out.setdefault(int(json.loads(message.key() or b"{}")["id"]), []).append(message)
    return out


def test_nasty_source_rows_end_on_active_or_in_the_dlq_and_none_is_lost(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    path, name = _source_pipeline(tmp_path, kafka_bootstrap)
    rows: list[tuple[Any, ...]] = [(i, i, f"n{i}", float(i), "ok") for i in range(1, 201)]
    nasty: list[tuple[Any, ...]] = [
        (301, 301, "nul\x00byte", 1.0, "a NUL character"),
        (302, 302, "inf", math.inf, "infinite"),
        (303, 303, "-inf", -math.inf, "minus infinite"),
        (304, 304, "nan", math.nan, "SQLite keeps NaN as NULL"),
        (305, 305, "huge", 1.0, "x" * 2_000_000),  # over message.max.bytes
        (306, 306, "large", 1.0, "y" * 400_000),  # under it
        (307, 307, "astral \U0001f600 and \u202e bidi", 1.0, "ok"),
        (308, 308, "dup 1", 1.0, "same id twice"),
        (308, 309, "dup 2", 2.0, "same id twice"),
    ]
    _insert(tmp_path, rows + nasty)

    result = _extract(path, tmp_path / "logs")
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()

    active, dlq = _landed(kafka_bootstrap, name)
    assert len(active) + len(dlq) == len(rows) + len(nasty)  # nothing lost, nothing doubled
    on_active, in_dlq = _by_id(active), _by_id(dlq)
    assert set(range(1, 201)) <= set(on_active)
    assert value_of(on_active[301][0])["name"] == "nul\x00byte"
    assert value_of(on_active[304][0])["price"] is None
    assert len(value_of(on_active[306][0])["note"]) == 400_000
    assert value_of(on_active[307][0])["name"] == "astral \U0001f600 and \u202e bidi"
    assert [_rules(m) for m in in_dlq[302]] == ["max(price)"]
    assert [_rules(m) for m in in_dlq[303]] == ["min(price)"]
    assert sorted(_rules(m) for m in in_dlq[308]) == ["unique(id)", "unique(id)"]
    [huge] = in_dlq[305]
    assert _rules(huge) == "record_too_large"
    message = headers_of(huge)["dp.error.message"].decode()
    assert "over message.max.bytes" in message, message
    assert "a 2000" in message, message  # the row's size
    assert (huge.value() or b"").startswith(b'{"id":305,"seq":305,"name":"huge"')
    assert set(on_active) | set(in_dlq) == set(range(1, 201)) | {r[0] for r in nasty}


@pytest.mark.parametrize(
    ("bad_sql", "says"),
    [
        ("INSERT INTO t VALUES (NULL, 50, 'no key', 1.0, 'x')", "key column `id` of `t` is NULL"),
        (
            "INSERT INTO t VALUES (50, 50, CAST(X'FFFE41' AS TEXT), 1.0, 'x')",
            "Could not decode to UTF-8 column 'name'",
        ),
        (
            "INSERT INTO t VALUES (50, 50, 'lone surrogate', 1.0, CAST(X'EDA080' AS TEXT))",
            "Could not decode to UTF-8 column 'note'",
        ),
    ],
    ids=["null-primary-key", "invalid-utf8", "encoded-surrogate"],
)
def test_a_row_that_cannot_be_read_is_a_one_line_refusal_and_a_fix_loses_nothing(
    tmp_path: Path, kafka_bootstrap: str, bad_sql: str, says: str
) -> None:
    path, name = _source_pipeline(tmp_path, kafka_bootstrap)
    _insert(tmp_path, [(i, i, f"n{i}", 1.0, "ok") for i in range(1, 41)], bad_sql)

    refused = _extract(path, tmp_path / "logs1")
    assert refused.returncode != 0, refused.describe()
    errors = [line for line in refused.stderr_lines if "WARNING" not in line]
    assert len(errors) == 1, refused.describe()
    assert errors[0].startswith("error: "), refused.describe()
    assert says in errors[0], refused.describe()

    _insert(tmp_path, [], "DELETE FROM t WHERE id IS NULL OR id = 50;")
    fixed = _extract(path, tmp_path / "logs2")
    assert fixed.returncode == 0, fixed.describe()
    active, dlq = _landed(kafka_bootstrap, name)
    assert sorted(_by_id(active)) == list(range(1, 41))
    assert not dlq


def test_schema_drift_between_runs_ends_in_the_dlq_with_the_reason(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A column added flows through; a declared column dropped or retyped breaks the
    contract row by row (its defaults); every source row lands once."""
    path, name = _source_pipeline(tmp_path, kafka_bootstrap, mode="incremental")
    folder, logs = tmp_path, tmp_path / "logs"

    def run(step: str) -> None:
        result = _extract(path, logs / step)
        assert result.returncode == 0, f"{step}: {result.describe()}"
        assert "Traceback" not in result.stderr, result.describe()

    _insert(folder, [(i, i, f"n{i}", 1.0, "ok") for i in range(1, 11)])
    run("first")
    _insert(folder, [], "ALTER TABLE t ADD COLUMN added TEXT;")
    _insert(folder, [(i, i, f"n{i}", 1.0, "ok", "new") for i in range(11, 21)])
    run("added")
    _insert(folder, [], "ALTER TABLE t DROP COLUMN note;")
    _insert(folder, [(i, i, f"n{i}", 1.0, "new") for i in range(21, 31)])
    run("dropped")
    _insert(
        folder,
        [],
        "CREATE TABLE t2 (id INTEGER, seq INTEGER, name TEXT, price TEXT, added TEXT);"
        " INSERT INTO t2 SELECT id, seq, name, price, added FROM t;"
        " DROP TABLE t; ALTER TABLE t2 RENAME TO t;",
    )
    _insert(folder, [(i, i, f"n{i}", "cheap", "new") for i in range(31, 41)])
    run("retyped")

    active, dlq = _landed(kafka_bootstrap, name)
    assert len(active) + len(dlq) == 40, (len(active), len(dlq))
    on_active, in_dlq = _by_id(active), _by_id(dlq)
    assert set(on_active) == set(range(1, 21)), sorted(on_active)
    assert value_of(on_active[15][0])["added"] == "new"
    assert set(in_dlq) == set(range(21, 41))
    assert {_rules(m) for i in range(21, 31) for m in in_dlq[i]} == {"missing_column(note)"}
    retyped = {_rules(m) for i in range(31, 41) for m in in_dlq[i]}
    assert retyped == {"type_drift(price),missing_column(note),type(price)"}, retyped

    # The active topic now holds records of two schemas (before and after `added`):
    # the transform stage takes both in one poll.
    result = run_transform(path, "--once", logs=logs / "transform")
    assert result.returncode == 0, result.describe()
    processed = read_committed(kafka_bootstrap, topics.processed(name, "t"))
    assert sorted(_by_id(processed)) == list(range(1, 21))
    assert value_of(_by_id(processed)[5][0])["added"] is None
    assert value_of(_by_id(processed)[15][0])["added"] == "new"
    assert not read_committed(kafka_bootstrap, topics.failed(name))


def test_a_cursor_value_that_goes_back_is_found_and_alerted_once(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A row written with a cursor behind the stored watermark is never read (the read
    starts after the watermark), but it is not lost silently: the next run's late-row
    check counts it, says so in one line and raises a ``late_rows`` alert, once.
    Rows updated forward (read again) and deleted rows raise no false alarm."""
    path, name = _source_pipeline(tmp_path, kafka_bootstrap, mode="incremental")
    _insert(tmp_path, [(i, 10 * i, f"n{i}", 1.0, "ok") for i in range(1, 11)])
    first = _extract(path, tmp_path / "logs1")
    assert first.returncode == 0, first.describe()
    assert "behind the watermark" not in first.stderr

    # Two rows come in behind the watermark (seq 100), one ahead, and one row is deleted.
    _insert(
        tmp_path,
        [(11, 35, "late", 1.0, "ok"), (12, 5, "late", 1.0, "ok"), (13, 110, "ahead", 1.0, "ok")],
        sql="DELETE FROM t WHERE id = 4;",
    )
    second = _extract(path, tmp_path / "logs2")
    assert second.returncode == 0, second.describe()
    # A lower bound: 2 arrived late, 1 left (deleted), so at least 1.
    assert "1 row(s) of `t` appeared behind the watermark (`seq` at or before 110)" in (
        second.stderr
    ), second.describe()
    active, dlq = _landed(kafka_bootstrap, name)
    assert (sorted(_by_id(active)), dlq) == ([*range(1, 11), 13], []), "late rows not read"
    events = [decode(m.value()) for m in read_committed(kafka_bootstrap, f"{name}.alerts")]
    [late] = [e for e in events if e.rule == "late_rows"]
    assert (late.kind, late.stage, late.table, late.count) == ("source_warning", "extract", "t", 1)

    # Said once; a row updated forward is read again and raises no false alarm.
    _insert(tmp_path, [], sql="UPDATE t SET seq = 130 WHERE id = 5;")
    third = _extract(path, tmp_path / "logs3")
    assert third.returncode == 0, third.describe()
    assert "behind the watermark" not in third.stderr, third.describe()
    assert len(_by_id(read_committed(kafka_bootstrap, topics.active(name, "t")))[5]) == 2

    # On an append-only stretch the count is exact.
    _insert(tmp_path, [(14, 1, "late again", 1.0, "ok"), (15, 2, "late again", 1.0, "ok")])
    fourth = _extract(path, tmp_path / "logs4")
    assert fourth.returncode == 0, fourth.describe()
    assert "2 row(s) of `t` appeared behind the watermark" in fourth.stderr, fourth.describe()


def test_a_transformed_row_too_large_for_a_record_goes_to_the_failed_store(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A step that makes a row larger than ``message.max.bytes`` (here 300 kB): Kafka
    would refuse the processed record, so the row goes to the failed store instead."""
    path, name = _source_pipeline(tmp_path, kafka_bootstrap)
    config = json.loads(path.read_text())
    config["kafka"]["extra"] = {"message.max.bytes": "300000"}
    config["transform"] = {"steps": {"t": [{"sql": "SELECT *, note || note AS twice FROM batch"}]}}
    path.write_text(json.dumps(config))
    _insert(tmp_path, [(i, i, f"n{i}", 1.0, "ok") for i in range(1, 21)])
    _insert(tmp_path, [(21, 21, "big", 1.0, "z" * 200_000)])  # 400 kB once doubled

    extracted = _extract(path, tmp_path / "logs")
    assert extracted.returncode == 0, extracted.describe()
    result = run_transform(path, "--once", logs=tmp_path / "logs")
    assert result.returncode == 0, result.describe()

    processed = _by_id(read_committed(kafka_bootstrap, topics.processed(name, "t")))
    assert sorted(processed) == list(range(1, 21))
    [failed] = read_committed(kafka_bootstrap, topics.failed(name))
    assert failed.key() == b'{"id":21}'
    envelope = value_of(failed)
    assert envelope["step"] == "output"
    assert [r["rule"] for r in envelope["reasons"]] == ["record_too_large", "record_too_large"]
    assert "over message.max.bytes (300000 bytes here)" in envelope["reasons"][0]["message"]
    assert envelope["input_text"].startswith('{"id":21,"seq":21,"name":"big"')


def test_postgres_nan_infinity_and_schema_drift_end_in_the_dlq_with_the_reason(
    tmp_path: Path, kafka_bootstrap: str, postgres_url: str
) -> None:
    """The same on PostgreSQL, whose doubles hold NaN and ±Infinity for real and whose
    columns change type in place (``ALTER COLUMN ... TYPE``)."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)

    def sql(*statements: str) -> None:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))

    sql(
        "CREATE TABLE t (id bigint, seq bigint, name text, price double precision, note text)",
        "INSERT INTO t SELECT i, i, 'n' || i, 1.0, 'ok' FROM generate_series(1, 10) i",
        "INSERT INTO t VALUES (11, 11, 'nan', 'NaN', 'ok'), (12, 12, 'inf', 'Infinity', 'ok'),"
        " (13, 13, '-inf', '-Infinity', 'ok')",
    )
    path, name = _source_pipeline(tmp_path, kafka_bootstrap, mode="incremental")
    config = json.loads(path.read_text())
    config["source"]["url"] = postgres_url
    path.write_text(json.dumps(config))
    logs = tmp_path / "logs"

    def run(step: str) -> None:
        result = _extract(path, logs / step)
        assert result.returncode == 0, f"{step}: {result.describe()}"
        assert "Traceback" not in result.stderr, result.describe()

    run("first")
    sql(
        "ALTER TABLE t ADD COLUMN added text",
        "INSERT INTO t SELECT i, i, 'n' || i, 1.0, 'ok', 'new' FROM generate_series(21, 25) i",
    )
    run("added")
    sql(
        "ALTER TABLE t DROP COLUMN note",
        "INSERT INTO t SELECT i, i, 'n' || i, 1.0, 'new' FROM generate_series(31, 35) i",
    )
    run("dropped")
    sql(
        "ALTER TABLE t ALTER COLUMN price TYPE text USING price::text",
        "INSERT INTO t SELECT i, i, 'n' || i, 'cheap', 'new' FROM generate_series(41, 45) i",
    )
    run("retyped")
    engine.dispose()

    active, dlq = _landed(kafka_bootstrap, name)
    assert len(active) + len(dlq) == 28, (len(active), len(dlq))
    on_active, in_dlq = _by_id(active), _by_id(dlq)
    assert set(on_active) == set(range(1, 11)) | set(range(21, 26)), sorted(on_active)
    rules = {i: {_rules(m) for m in in_dlq[i]} for i in in_dlq}
    assert rules[12] == {"max(price)"}
    assert rules[13] == {"min(price)"}
    # NaN meets no bound: both rules name it (before, `min` let it through, as DuckDB
    # orders NaN above every number); the reason's value says "nan".
    assert rules[11] == {"min(price),max(price)"}
    assert json.loads(headers_of(in_dlq[11][0])["dp.error.reasons"])[0]["value"] == "nan"
    assert {r for i in range(31, 36) for r in rules[i]} == {"missing_column(note)"}
    retyped = {r for i in range(41, 46) for r in rules[i]}
    assert retyped == {"type_drift(price),missing_column(note),type(price)"}, retyped
