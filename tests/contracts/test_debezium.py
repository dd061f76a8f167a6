"""Debezium change events as the PostgreSQL connector (3.6, pgoutput, JSON converter) writes them
for the source systems of sources.md, with and without embedded schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from canbao_contracts.debezium import (
    ChangeEvent,
    ChangePosition,
    MalformedChangeEvent,
    decode_date,
    decode_timestamp,
    parse_change_event,
)

TOPIC = "cdc.si_core.ac02"
SNAPSHOT_LSN = 26362096
ENROLMENT_KEY = {"aac001": "P0001", "aae140": "110", "aab301": "520102"}
ENROLMENT = {
    **ENROLMENT_KEY,
    "aab001": "U0001",
    "aac008": "1",
    "aac030": 16495,  # 2015-03-01 as days since 1970-01-01
    "aae030": 16495,
    "aae031": None,
    "updated_at": "2026-11-22T02:00:00.123456Z",
}
SUSPENDED = {**ENROLMENT, "aac008": "2"}
# Under the default replica identity a delete carries the key; the rest is null or a default.
DELETED = {
    **ENROLMENT_KEY,
    **dict.fromkeys(["aab001", "aac008", "aac030", "aae030", "aae031"]),
    "updated_at": "1970-01-01T00:00:00.000000Z",
}


def source(
    lsn: int, tx_id: int, *, snapshot: str = "false", last_commit: int | None = None
) -> dict[str, Any]:
    ts_ms = 1795312800000 + tx_id
    return {
        "version": "3.6.3.Final",
        "connector": "postgresql",
        "name": "cdc",
        "ts_ms": ts_ms,
        "snapshot": snapshot,
        "db": "sources",
        "sequence": json.dumps([None if last_commit is None else str(last_commit), str(lsn)]),
        "ts_us": ts_ms * 1000,
        "ts_ns": ts_ms * 1000_000,
        "schema": "si_core",
        "table": "ac02",
        "txId": tx_id,
        "lsn": lsn,
        "xmin": None,
        "origin": None,
        "origin_lsn": None,
    }


def envelope(op: str, before: Any, after: Any, source_block: Any) -> dict[str, Any]:
    ts_ms = 1795312801000
    return {
        "before": before,
        "after": after,
        "source": source_block,
        "transaction": None,
        "op": op,
        "ts_ms": ts_ms,
        "ts_us": ts_ms * 1000,
        "ts_ns": ts_ms * 1000_000,
    }


SNAPSHOT_READ = envelope("r", None, ENROLMENT, source(SNAPSHOT_LSN, 727, snapshot="last"))
INSERT = envelope("c", None, ENROLMENT, source(26362136, 728))
UPDATE = envelope("u", None, SUSPENDED, source(26362360, 729, last_commit=26362360))
DELETE = envelope("d", DELETED, None, source(26362528, 730, last_commit=26362528))


# -- The two forms of the JSON converter ----------------------------------------------------------


def _field(column: str, kind: str, *, optional: bool = True, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "optional": optional, **extra, "field": column}


_KEY_FIELDS = [_field(column, "string", optional=False) for column in ENROLMENT_KEY]
_DATE: dict[str, Any] = {"name": "io.debezium.time.Date", "version": 1}
_ROW_FIELDS = [
    *_KEY_FIELDS,
    _field("aab001", "string"),
    _field("aac008", "string"),
    *[_field(column, "int32", **_DATE) for column in ("aac030", "aae030", "aae031")],
    _field(
        "updated_at",
        "string",
        name="io.debezium.time.ZonedTimestamp",
        version=1,
        default="1970-01-01T00:00:00.000000Z",
    ),
]
_SOURCE_FIELDS = [
    _field(name, kind, optional=optional)
    for name, kind, optional in [
        ("version", "string", False),
        ("connector", "string", False),
        ("name", "string", False),
        ("ts_ms", "int64", False),
        ("snapshot", "string", True),
        ("db", "string", False),
        ("sequence", "string", True),
        ("ts_us", "int64", True),
        ("ts_ns", "int64", True),
        ("schema", "string", False),
        ("table", "string", False),
        ("txId", "int64", True),
        ("lsn", "int64", True),
        ("xmin", "int64", True),
        ("origin", "string", True),
        ("origin_lsn", "int64", True),
    ]
]
KEY_SCHEMA = {"type": "struct", "fields": _KEY_FIELDS, "optional": False, "name": f"{TOPIC}.Key"}
VALUE_SCHEMA = {
    "type": "struct",
    "fields": [
        {
            "type": "struct",
            "fields": _ROW_FIELDS,
            "optional": True,
            "name": f"{TOPIC}.Value",
            "field": "before",
        },
        {
            "type": "struct",
            "fields": _ROW_FIELDS,
            "optional": True,
            "name": f"{TOPIC}.Value",
            "field": "after",
        },
        {
            "type": "struct",
            "fields": _SOURCE_FIELDS,
            "optional": False,
            "name": "io.debezium.connector.postgresql.Source",
            "version": 1,
            "field": "source",
        },
        _field("op", "string", optional=False),
        _field("ts_ms", "int64"),
        _field("ts_us", "int64"),
        _field("ts_ns", "int64"),
    ],
    "optional": False,
    "name": f"{TOPIC}.Envelope",
    "version": 2,
}

Encode = Callable[[Any, dict[str, Any]], bytes]


def bare(payload: Any, schema: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def embedded(payload: Any, schema: dict[str, Any]) -> bytes:
    return bare({"schema": schema, "payload": payload}, schema)


FORMS = pytest.mark.parametrize("encode", [bare, embedded], ids=["bare", "schema-embedded"])


def parse(encode: Encode, value: dict[str, Any] | None, *, topic: str = TOPIC) -> ChangeEvent:
    key = encode(ENROLMENT_KEY, KEY_SCHEMA)
    return parse_change_event(
        key, None if value is None else encode(value, VALUE_SCHEMA), topic=topic
    )


# -- Row changes ----------------------------------------------------------------------------------


@FORMS
def test_snapshot_read_carries_the_row_and_the_snapshots_position(encode: Encode) -> None:
    event = parse(encode, SNAPSHOT_READ)

    assert (event.op, event.schema_name, event.table) == ("r", "si_core", "ac02")
    assert event.key == ENROLMENT_KEY
    assert event.before is None and event.after == event.row == ENROLMENT
    assert (event.lsn, event.tx_id) == (SNAPSHOT_LSN, 727)
    assert event.position == ChangePosition(SNAPSHOT_LSN, streamed=False)
    assert not event.is_delete


@FORMS
def test_insert_carries_the_new_row(encode: Encode) -> None:
    event = parse(encode, INSERT)

    assert event.op == "c" and event.row == ENROLMENT
    assert event.source_ts_ms == 1795312800728 and event.ts_ms == 1795312801000
    assert event.position == ChangePosition(26362136, streamed=True)


@FORMS
def test_update_carries_the_row_as_it_now_is(encode: Encode) -> None:
    event = parse(encode, UPDATE)

    assert event.op == "u" and event.before is None  # default replica identity: no old row
    assert event.row is not None and event.row["aac008"] == "2"


@FORMS
def test_delete_carries_the_row_it_removed(encode: Encode) -> None:
    event = parse(encode, DELETE)

    assert event.op == "d" and event.is_delete
    assert event.after is None and event.row == DELETED
    assert event.key == ENROLMENT_KEY


@FORMS
def test_tombstone_after_a_delete_keeps_the_key(encode: Encode) -> None:
    event = parse(encode, None)

    assert event.op == "tombstone" and event.is_delete
    assert event.key == ENROLMENT_KEY
    assert (event.schema_name, event.table) == ("si_core", "ac02")  # from the topic
    assert event.row is None and event.position is None


def test_a_household_registration_insert_as_debezium_writes_it() -> None:
    key = b'{"sfzh":"52010219900101123X"}'
    value = (
        '{"before":null,"after":{"sfzh":"52010219900101123X","xm":"张三","xb":"1",'
        '"csrq":7305,"mz":"01","hjdz_xzqh":"520102","hjdz":"贵州省贵阳市南明区花果园街道1号",'
        '"hh":"520102000123","yhzgx":"01","ryzt":"0","zxrq":null,'
        '"updated_at":"2026-11-22T02:00:00.000000Z"},"source":{"version":"3.6.3.Final",'
        '"connector":"postgresql","name":"cdc","ts_ms":1795312800000,"snapshot":"false",'
        '"db":"sources","sequence":"[\\"26400000\\",\\"26400152\\"]","ts_us":1795312800000000,'
        '"ts_ns":1795312800000000000,"schema":"hukou","table":"person","txId":812,'
        '"lsn":26400152,"xmin":null,"origin":null,"origin_lsn":null},"transaction":null,'
        '"op":"c","ts_ms":1795312800412,"ts_us":1795312800412117,"ts_ns":1795312800412117443}'
    ).encode()

    event = parse_change_event(key, value, topic="cdc.hukou.person")

    assert (event.schema_name, event.table, event.op) == ("hukou", "person", "c")
    assert event.key == {"sfzh": "52010219900101123X"}
    assert event.row is not None and event.row["xm"] == "张三"
    assert decode_date(event.row["csrq"]) == date(1990, 1, 1)
    assert (event.lsn, event.tx_id) == (26400152, 812)


def test_a_table_without_a_primary_key_has_an_empty_key() -> None:
    event = parse_change_event(None, bare(INSERT, VALUE_SCHEMA), topic=TOPIC)
    assert event.key == {}


def test_the_table_comes_from_the_topic_when_the_event_has_no_source_block() -> None:
    event = parse_change_event(None, bare(envelope("c", None, ENROLMENT, None), {}), topic=TOPIC)

    assert (event.schema_name, event.table) == ("si_core", "ac02")
    assert event.lsn is None and event.position is None


def test_a_null_schema_and_payload_is_an_old_converters_tombstone() -> None:
    # Kafka's JsonConverter wrote tombstones this way before KAFKA-3832.
    value = b'{"schema":null,"payload":null}'
    event = parse_change_event(embedded(ENROLMENT_KEY, KEY_SCHEMA), value, topic=TOPIC)
    assert event.op == "tombstone"


# -- Positions: ordering and duplicates -----------------------------------------------------------


def test_every_later_change_of_a_row_has_a_greater_position() -> None:
    history = (SNAPSHOT_READ, INSERT, UPDATE, DELETE)
    positions = [position for value in history if (position := parse(bare, value).position)]
    assert len(positions) == 4 and positions == sorted(positions)


def test_a_change_streamed_at_the_snapshots_lsn_comes_after_the_read() -> None:
    streamed_at_snapshot = envelope("u", None, SUSPENDED, source(SNAPSHOT_LSN, 728))
    read, streamed = parse(bare, SNAPSHOT_READ), parse(bare, streamed_at_snapshot)

    assert read.position is not None and streamed.position is not None
    assert read.position < streamed.position


def test_a_redelivered_event_has_the_same_position() -> None:
    assert parse(bare, UPDATE).position == parse(embedded, UPDATE).position


def test_two_snapshot_reads_of_different_rows_share_a_position() -> None:
    # Positions order the changes of one row: a consumer keys them by (table, key).
    other = envelope("r", None, {**ENROLMENT, "aac001": "P0002"}, source(SNAPSHOT_LSN, 727))
    assert parse(bare, SNAPSHOT_READ).position == parse(bare, other).position


# -- Malformed events: refused with a reason for the dead-letter header ---------------------------


def _value(**changes: Any) -> bytes:
    return bare({**INSERT, **changes}, {})


def _without(field: str) -> bytes:
    return bare({name: v for name, v in INSERT.items() if name != field}, {})


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, b'{"before":null,', "value is not valid JSON: EOF while parsing"),
        (None, b"\xff\xfe\xfa", "value is not valid JSON"),
        (b"not json", _value(), "key is not valid JSON"),
        (b"[1, 2]", _value(), "key is a JSON array, expected an object"),
        (None, b"[]", "value is a JSON array, expected an object"),
        (None, b"null", "value is a JSON null, expected an object"),
        (None, b'{"schema":{},"payload":"c"}', "value is a JSON string, expected an object"),
        (None, _without("op"), "value has no 'op' (not a Debezium change event)"),
        (None, _value(op="x"), "unknown op 'x', expected one of r, c, u, d"),
        (None, _value(op=1), "op is a JSON number, expected one of r, c, u, d"),
        (None, _value(op=["c"]), "op is a JSON array, expected one of r, c, u, d"),
        (None, _value(op="t"), "unsupported op 't' (truncate)"),
        (None, _value(after=[1]), "'after' is a JSON array, expected an object"),
        (None, _value(before="x"), "'before' is a JSON string, expected an object"),
        (None, _value(after=None), "op 'c' without an 'after' row"),
        (None, bare({**DELETE, "before": None}, {}), "op 'd' without a 'before' row"),
        (None, _value(source=[]), "source is a JSON array, expected an object"),
        (
            None,
            _value(source={**INSERT["source"], "lsn": "26362136"}),
            "source.lsn is a JSON string",
        ),
        (None, _value(source={**INSERT["source"], "txId": 7.5}), "source.txId is a JSON number"),
        (
            None,
            _value(source={**INSERT["source"], "table": None}),
            "source.schema and source.table",
        ),
        (None, _value(ts_ms=True), "ts_ms is a JSON boolean, expected an integer"),
    ],
)
def test_malformed_event_is_refused_with_its_reason(
    key: bytes | None, value: bytes, reason: str
) -> None:
    with pytest.raises(MalformedChangeEvent) as raised:
        parse_change_event(key, value, topic=TOPIC)

    assert raised.value.reason.startswith(reason)
    assert str(raised.value) == raised.value.reason
    assert isinstance(raised.value, ValueError)


def test_a_tombstone_on_a_topic_that_names_no_table_is_refused() -> None:
    with pytest.raises(
        MalformedChangeEvent, match=r"topic 'persons' is not <prefix>\.<schema>\.<table>"
    ):
        parse_change_event(b'{"sfzh":"1"}', None, topic="persons")


# -- Column values (Debezium's default time.precision.mode=adaptive) -------------------------------


def test_a_date_column_is_days_since_1970() -> None:
    assert decode_date(16495) == date(2015, 3, 1)
    assert decode_date(0) == date(1970, 1, 1)


def test_a_birth_date_before_1970_is_a_negative_day_count() -> None:
    assert decode_date(-3653) == date(1960, 1, 1)


def test_a_date_column_may_arrive_as_iso_text_or_be_missing() -> None:
    assert decode_date("2015-03-01") == date(2015, 3, 1)
    assert decode_date(None) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2015-02-30", "column 'aac030': '2015-02-30' is not a date"),
        (10**9, "column 'aac030': 1000000000 is not a date"),
        (True, "column 'aac030': a date cannot be a JSON boolean"),
        (1.5, "column 'aac030': a date cannot be a JSON number"),
    ],
)
def test_a_date_column_that_is_no_date_is_refused(value: object, reason: str) -> None:
    with pytest.raises(MalformedChangeEvent) as raised:
        decode_date(value, column="aac030")
    assert raised.value.reason.startswith(reason)


def test_a_timestamptz_column_is_iso_text_in_utc() -> None:
    assert decode_timestamp("2026-11-22T02:00:00.123456Z") == datetime(
        2026, 11, 22, 2, 0, 0, 123456, tzinfo=UTC
    )
    assert decode_timestamp(None) is None


def test_a_timestamptz_column_that_is_no_timestamp_is_refused() -> None:
    with pytest.raises(MalformedChangeEvent, match="column 'reported_at': 'yesterday'"):
        decode_timestamp("yesterday", column="reported_at")
    with pytest.raises(MalformedChangeEvent, match="a timestamp cannot be a JSON number"):
        decode_timestamp(1795312800000, column="reported_at")
