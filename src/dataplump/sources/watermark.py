"""Where a read stopped: the cursor and primary-key values of the last row delivered.

A :class:`Watermark` is what the extraction stage stores (in the same Kafka transaction
as the records it covers) and hands back to :meth:`Source.read` to resume. It must
survive JSON without loss, so each value is written with its type and as a string::

    >>> from datetime import datetime, timezone
    >>> from decimal import Decimal
    >>> w = Watermark(cursor=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc),
    ...               pk=(Decimal("10.50"), "a"))
    >>> w.to_json()
    '{"cursor":{"type":"timestamptz","value":"2024-05-01T12:00:00.123456+00:00"},"pk":[{"type":"decimal","value":"10.50"},{"type":"str","value":"a"}]}'
    >>> Watermark.from_json(w.to_json()) == w
    True

Meaning:

- ``cursor`` is ``None`` in ``full`` mode (the snapshot is ordered by the key alone);
  in ``incremental`` mode it is the last row's cursor value.
- ``pk`` is the last row's primary-key values, in config order. It is ``None`` only
  in a watermark DataPlump *capped* (see ``docs/sources.md``): "past every row whose
  cursor is at most ``cursor``".
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Value", "Watermark", "decode_value", "encode_value"]

Value = int | Decimal | str | bytes | bool | float | date | datetime | time
"""A cursor or key value, as pyarrow's ``as_py()`` gives it for the types DataPlump carries."""


def encode_value(value: Value) -> dict[str, str | bool]:
    """``value`` as ``{"type": ..., "value": ...}``, exact through any JSON parser."""
    # Order matters: bool is an int, datetime is a date.
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": str(value)}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, bytes):
        return {"type": "bytes", "value": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return {"type": "timestamp", "value": value.isoformat()}
        return {"type": "timestamptz", "value": value.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, time):
        return {"type": "time", "value": value.isoformat()}
    raise TypeError(f"a watermark cannot hold {type(value).__name__} values")


def decode_value(data: Any) -> Value:
    """The value :func:`encode_value` wrote; ``ValueError`` if ``data`` is not one."""
    if not isinstance(data, dict) or set(data) != {"type", "value"}:
        raise ValueError(f"expected {{'type': ..., 'value': ...}}, got {data!r}")
    kind, raw = data["type"], data["value"]
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw
    if not isinstance(raw, str):
        raise ValueError(f"expected a string value for type {kind!r}, got {raw!r}")
    try:
        value: Value = _DECODERS[kind](raw)
    except KeyError:
        raise ValueError(f"unknown value type {kind!r}") from None
    except (ValueError, InvalidOperation, binascii.Error) as exc:
        raise ValueError(f"bad {kind} value {raw!r}: {exc}") from None
    return value


def _timestamptz(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise ValueError("expected a UTC offset")
    return value.astimezone(UTC)


def _timestamp(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is not None:
        raise ValueError("expected no UTC offset")
    return value


def _decimal(raw: str) -> Decimal:
    value = Decimal(raw)
    if not value.is_finite():
        raise ValueError("expected a finite decimal")
    return value


def _float(raw: str) -> float:
    value = float(raw)
    if math.isnan(value):
        raise ValueError("NaN does not order")
    return value


_DECODERS: dict[str, Any] = {
    "int": int,
    "decimal": _decimal,
    "float": _float,
    "str": str,
    "bytes": lambda raw: base64.b64decode(raw, validate=True),
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
}


@dataclass(frozen=True)
class Watermark:
    """Cursor and primary-key values of the last row a read delivered (see module doc)."""

    cursor: Value | None
    """The last row's cursor value; ``None`` in ``full`` mode."""
    pk: tuple[Value, ...] | None
    """The last row's primary-key values, in config order; ``None`` only when capped."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (every value typed, as a string where JSON could lose it)."""
        return {
            "cursor": None if self.cursor is None else encode_value(self.cursor),
            "pk": None if self.pk is None else [encode_value(v) for v in self.pk],
        }

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> Watermark:
        """The watermark :meth:`to_dict` wrote; ``ValueError`` names what is wrong."""
        if not isinstance(data, dict) or set(data) != {"cursor", "pk"}:
            raise ValueError("a watermark is an object with exactly the keys `cursor` and `pk`")
        cursor = None if data["cursor"] is None else decode_value(data["cursor"])
        raw_pk = data["pk"]
        if raw_pk is not None and not isinstance(raw_pk, list):
            raise ValueError("`pk` of a watermark is a list or null")
        pk = None if raw_pk is None else tuple(decode_value(v) for v in raw_pk)
        if cursor is None and pk is None:
            raise ValueError("a watermark needs a cursor, a primary key or both")
        return cls(cursor=cursor, pk=pk)

    @classmethod
    def from_json(cls, text: str | bytes) -> Watermark:
        """The watermark :meth:`to_json` wrote; ``ValueError`` names what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"a watermark is JSON: {exc}") from None
        return cls.from_dict(data)

    def __str__(self) -> str:
        parts = [] if self.cursor is None else [f"cursor={self.cursor!r}"]
        parts.append("pk=(all)" if self.pk is None else f"pk={self.pk!r}")
        return f"Watermark({', '.join(parts)})"
