"""Debezium change events from the source systems (sources.md "The change events").

The PostgreSQL connector with the JSON converter writes, per row change, a key (the row's primary
key) and a value: the envelope `{before, after, source, op, ts_ms}`, wrapped as
`{"schema": …, "payload": …}` where the deployment embeds schemas. A delete is followed by a
tombstone: the same key with a null value. `parse_change_event` accepts all of these and refuses
anything else with a reason precise enough for a dead-letter header.

Column values are left as the converter wrote them. With Debezium's defaults
(`time.precision.mode=adaptive`) a `date` column is an integer count of days since 1970-01-01
and a `timestamptz` column an ISO-8601 string; `decode_date` and `decode_timestamp` read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple, cast

import pydantic_core

Op = Literal["r", "c", "u", "d", "tombstone"]
_ROW_OPS: Final = ("r", "c", "u", "d")
_UNSUPPORTED_OPS: Final = {"t": "truncate", "m": "logical decoding message"}
_EPOCH: Final = date(1970, 1, 1)


class MalformedChangeEvent(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChangePosition(NamedTuple):
    """Where a change sits in the source database's history: a greater position is a later state
    of the same row, so a consumer keeps the highest position it applied per (table, key) and
    skips any event at or below it (a duplicate, or a late copy of an older change).

    Every streamed change has its own WAL position, even two changes in one transaction. All
    reads of one snapshot share the snapshot's LSN, but they read different rows, so they never
    compete; a change streamed at that same LSN committed after the snapshot was taken, and
    `streamed` puts it after the read. A new snapshot reads at a newer LSN and supersedes
    everything before it, so re-snapshotting re-applies rows harmlessly.
    """

    lsn: int
    streamed: bool


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change of one source row, or the tombstone that follows a delete."""

    topic: str
    op: Op
    schema_name: str  # the source system (sources.md): si_core, medical, hukou…
    table: str
    key: dict[str, Any]  # the primary key columns; empty for a table without one
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source_ts_ms: int | None  # when the change was committed in the source database
    lsn: int | None
    tx_id: int | None
    ts_ms: int | None  # when Debezium processed it

    @property
    def is_delete(self) -> bool:
        """The row with this key is gone (a delete, or the tombstone that follows it)."""
        return self.op in ("d", "tombstone")

    @property
    def row(self) -> dict[str, Any] | None:
        """The row as it now is, or as it was before a delete; None for a tombstone.

        Of a deleted row only the key columns are reliable: under PostgreSQL's default replica
        identity the others arrive null, or as their type's default (`updated_at` 1970-01-01).
        """
        return self.before if self.op == "d" else self.after

    @property
    def position(self) -> ChangePosition | None:
        """None for a tombstone (nothing to apply) and for a source without an LSN."""
        if self.lsn is None or self.op == "tombstone":
            return None
        return ChangePosition(self.lsn, streamed=self.op != "r")


def parse_change_event(key: bytes | None, value: bytes | None, *, topic: str) -> ChangeEvent:
    row_key = _payload(key, "key") or {}
    envelope = _payload(value, "value")
    if envelope is None:
        return _tombstone(row_key, topic)
    op = _op(envelope)
    before, after = _row(envelope, "before"), _row(envelope, "after")
    if op == "d" and before is None:
        raise MalformedChangeEvent("op 'd' without a 'before' row")
    if op != "d" and after is None:
        raise MalformedChangeEvent(f"op {op!r} without an 'after' row")
    source = {} if envelope.get("source") is None else _object(envelope["source"], "source")
    schema_name, table = _table(source, topic)
    return ChangeEvent(
        topic=topic,
        op=op,
        schema_name=schema_name,
        table=table,
        key=row_key,
        before=before,
        after=after,
        source_ts_ms=_integer(source, "ts_ms", "source.ts_ms"),
        lsn=_integer(source, "lsn", "source.lsn"),
        tx_id=_integer(source, "txId", "source.txId"),
        ts_ms=_integer(envelope, "ts_ms", "ts_ms"),
    )


def decode_date(value: object, *, column: str = "date") -> date | None:
    """A `date` column: days since 1970-01-01 (io.debezium.time.Date), or 'YYYY-MM-DD' where a
    deployment converts dates to text; None stays None."""
    if value is None:
        return None
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return _EPOCH + timedelta(days=value)
        if isinstance(value, str):
            return date.fromisoformat(value)
    except (ValueError, OverflowError) as error:
        raise MalformedChangeEvent(
            f"column {column!r}: {value!r} is not a date ({error})"
        ) from None
    raise MalformedChangeEvent(f"column {column!r}: a date cannot be a JSON {_json_type(value)}")


def decode_timestamp(value: object, *, column: str = "timestamp") -> datetime | None:
    """A `timestamptz` column: an ISO-8601 string in UTC (io.debezium.time.ZonedTimestamp);
    None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedChangeEvent(
            f"column {column!r}: a timestamp cannot be a JSON {_json_type(value)}"
        )
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedChangeEvent(f"column {column!r}: {value!r} is not a timestamp") from None


def _tombstone(row_key: dict[str, Any], topic: str) -> ChangeEvent:
    schema_name, table = _table_from_topic(topic)
    return ChangeEvent(
        topic=topic,
        op="tombstone",
        schema_name=schema_name,
        table=table,
        key=row_key,
        before=None,
        after=None,
        source_ts_ms=None,
        lsn=None,
        tx_id=None,
        ts_ms=None,
    )


def _payload(data: bytes | None, part: str) -> dict[str, Any] | None:
    """The key's or envelope's object, unwrapped from `{"schema", "payload"}` if embedded."""
    if data is None:
        return None
    try:
        # pydantic's parser: a third of json.loads' time, and every change event pays it twice.
        document = pydantic_core.from_json(data)
    except ValueError as error:  # malformed JSON and invalid UTF-8 alike
        raise MalformedChangeEvent(f"{part} is not valid JSON: {error}") from None
    if isinstance(document, dict) and document.keys() == {"schema", "payload"}:
        # A null payload is what Kafka's JsonConverter made of a tombstone before KAFKA-3832.
        document = document["payload"]
        if document is None:
            return None
    return _object(document, part)


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedChangeEvent(f"{name} is a JSON {_json_type(value)}, expected an object")
    return cast(dict[str, Any], value)


def _op(envelope: dict[str, Any]) -> Literal["r", "c", "u", "d"]:
    if "op" not in envelope:
        raise MalformedChangeEvent("value has no 'op' (not a Debezium change event)")
    op = envelope["op"]
    if not isinstance(op, str):
        raise MalformedChangeEvent(f"op is a JSON {_json_type(op)}, expected one of r, c, u, d")
    if op in _UNSUPPORTED_OPS:
        raise MalformedChangeEvent(f"unsupported op {op!r} ({_UNSUPPORTED_OPS[op]})")
    if op not in _ROW_OPS:
        raise MalformedChangeEvent(f"unknown op {op!r}, expected one of r, c, u, d")
    return cast(Literal["r", "c", "u", "d"], op)


def _row(envelope: dict[str, Any], name: str) -> dict[str, Any] | None:
    row = envelope.get(name)
    return None if row is None else _object(row, f"'{name}'")


def _table(source: dict[str, Any], topic: str) -> tuple[str, str]:
    schema_name, table = source.get("schema"), source.get("table")
    if schema_name is None and table is None:
        return _table_from_topic(topic)
    if not isinstance(schema_name, str) or not isinstance(table, str):
        raise MalformedChangeEvent(
            f"source.schema and source.table must be strings, got {schema_name!r}, {table!r}"
        )
    return schema_name, table


def _table_from_topic(topic: str) -> tuple[str, str]:
    """Debezium names topics `<prefix>.<schema>.<table>` (sources.md: `cdc.hukou.person`)."""
    parts = topic.split(".")
    if len(parts) < 3 or not all(parts):
        raise MalformedChangeEvent(
            f"topic {topic!r} is not <prefix>.<schema>.<table> and the event names no table"
        )
    return parts[-2], parts[-1]


def _integer(block: dict[str, Any], field: str, name: str) -> int | None:
    value = block.get(field)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise MalformedChangeEvent(f"{name} is a JSON {_json_type(value)}, expected an integer")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)
