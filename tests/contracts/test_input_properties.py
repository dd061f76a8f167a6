"""Every parser of outside input, fed anything: it answers with its value or with its own
error that names what is wrong (which becomes a dead letter or a 422), never with another
exception that would crash a consumer or answer 500.

The number of examples is hypothesis's profile: `default` in `make test`, `fuzz` for the long
campaign (`make fuzz`, tests/conftest.py)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from canbao_contracts.codes import CertificateType, RegistrationItem
from canbao_contracts.collected_items import ItemDefect, item_defects, missing_required
from canbao_contracts.debezium import (
    ChangeEvent,
    MalformedChangeEvent,
    decode_date,
    decode_timestamp,
    parse_change_event,
)
from canbao_contracts.envelope import Envelope, MalformedEnvelope

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ROW = st.dictionaries(st.sampled_from(["sfzh", "xm", "aac002", "csrq", "id"]), JSON, max_size=5)
OPS = st.sampled_from(["r", "c", "u", "d", "t", "m", "x"]) | JSON


def envelope_like() -> st.SearchStrategy[Any]:
    """Values shaped like a Debezium envelope, with any part of it wrong."""
    return st.fixed_dictionaries(
        {},
        optional={
            "op": OPS,
            "before": st.none() | ROW | JSON,
            "after": st.none() | ROW | JSON,
            "source": st.fixed_dictionaries(
                {},
                optional={
                    "lsn": JSON | st.integers(),
                    "txId": JSON,
                    "ts_ms": JSON,
                    "schema": JSON,
                    "table": JSON,
                },
            )
            | JSON,
            "ts_ms": JSON | st.integers(),
        },
    )


def encoded(value: Any, *, embed: bool) -> bytes:
    return json.dumps({"schema": {}, "payload": value} if embed else value).encode()


@given(key=st.none() | st.binary(), value=st.none() | st.binary(), topic=st.text())
def test_any_bytes_are_a_change_event_or_a_malformed_one(
    key: bytes | None, value: bytes | None, topic: str
) -> None:
    try:
        assert isinstance(parse_change_event(key, value, topic=topic), ChangeEvent)
    except MalformedChangeEvent as error:
        assert error.reason


@given(key=st.none() | ROW, value=envelope_like(), embed=st.booleans())
def test_any_envelope_shaped_json_is_a_change_event_or_a_malformed_one(
    key: dict[str, Any] | None, value: Any, embed: bool
) -> None:
    try:
        event = parse_change_event(
            None if key is None else encoded(key, embed=embed),
            encoded(value, embed=embed),
            topic="cdc.hukou.person",
        )
    except MalformedChangeEvent as error:
        assert error.reason
        return
    assert event.op in ("r", "c", "u", "d")
    assert event.row is not None  # the row as it is now, or as it was before a delete


@given(value=JSON)
def test_any_column_value_is_a_date_or_a_malformed_one(value: Any) -> None:
    for decode in (decode_date, decode_timestamp):
        try:
            decode(value, column="c")
        except MalformedChangeEvent as error:
            assert error.reason


@given(headers=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=40)), max_size=8))
def test_any_headers_are_an_envelope_none_or_a_malformed_one(
    headers: list[tuple[str, bytes]],
) -> None:
    try:
        envelope = Envelope.from_headers(headers)
    except MalformedEnvelope as error:
        assert error.reason
        return
    assert envelope is None or envelope.id


@given(
    items=st.dictionaries(
        st.sampled_from([item.value for item in RegistrationItem]) | st.text(max_size=50),
        st.text(max_size=200),
        max_size=12,
    ),
    document_type=st.sampled_from(list(CertificateType)),
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
)
def test_any_collected_items_get_a_list_of_defects(
    items: dict[str, str], document_type: CertificateType, today: date
) -> None:
    defects = item_defects(items, document_type=document_type, today=today)
    defects += missing_required(items)
    assert all(isinstance(d, ItemDefect) and d.message and d.message_zh for d in defects)
    json.dumps([d.as_dict() for d in defects])  # the 422's body can always be written
