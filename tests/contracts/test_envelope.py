"""CloudEvents 1.0 in Kafka binary mode: every event → key + headers + JSON value → the same
event; and every way a message's envelope can be wrong, refused with a reason."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from uuid import RFC_4122, UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canbao_contracts.envelope import (
    ContractError,
    Envelope,
    InvalidEventPayload,
    KafkaRecord,
    MalformedEnvelope,
    UnknownEventType,
    decode,
    encode,
    new_event_id,
)
from canbao_contracts.events import Event, PersonRegistered
from canbao_contracts.topics import ALL_TOPICS
from tests.contracts.event_examples import AT, EVENTS, PERSON

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SOURCE = "/canbao/identity"
Headers = list[tuple[str, bytes]]


def _record(
    *, time: datetime = AT, traceparent: str = TRACEPARENT, tracestate: str | None = None
) -> KafkaRecord:
    """张伟's registration, as identity publishes it."""
    event = EVENTS["person registered"]
    return encode(
        event, source=SOURCE, id="evt-1", time=time, traceparent=traceparent, tracestate=tracestate
    )


def _replace(headers: Sequence[tuple[str, bytes]], name: str, value: bytes | None) -> Headers:
    kept = [(n, v) for n, v in headers if n != name]
    return kept if value is None else [*kept, (name, value)]


# -- round trip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
def test_every_event_round_trips_through_kafka(event: Event) -> None:
    record = encode(event, source=SOURCE, traceparent=TRACEPARENT)
    envelope, decoded = decode(record.headers, record.value)
    assert decoded == event and type(decoded) is type(event)
    assert record.topic == event.destination.name and record.topic in {t.name for t in ALL_TOPICS}
    assert record.key == event.subject.encode()
    assert (envelope.type, envelope.source, envelope.subject) == (event.type, SOURCE, event.subject)
    assert envelope.traceparent == TRACEPARENT


def test_binary_mode_headers_and_json_value() -> None:
    record = _record(tracestate="canbao=00f067aa0ba902b7")
    assert record.headers == [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"evt-1"),
        ("ce_type", b"cn.canbao.registry.person.registered.v1"),
        ("ce_source", SOURCE.encode()),
        ("ce_time", b"2026-11-22T10:00:00Z"),
        ("ce_subject", str(PERSON["person_id"]).encode()),
        ("content-type", b"application/json"),
        ("traceparent", TRACEPARENT.encode()),
        ("tracestate", b"canbao=00f067aa0ba902b7"),
    ]
    assert record.value is not None
    assert json.loads(record.value)["masked_name"] == "张*"


def test_each_event_gets_its_own_id_unless_given_one() -> None:
    event = EVENTS["person registered"]
    first, second = encode(event, source=SOURCE), encode(event, source=SOURCE)
    ids = [dict(r.headers)["ce_id"] for r in (first, second)]
    assert ids[0] != ids[1]
    assert dict(_record().headers)["ce_id"] == b"evt-1"


def test_an_events_own_id_is_a_time_ordered_uuid_as_text() -> None:
    """What str(uuid.UUID(...)) writes of a version 7 UUID (RFC 9562 §5.7): the Unix time in
    milliseconds first, so ids made later sort later as text, and 74 random bits."""
    before = time.time_ns() // 1_000_000
    ids = []
    for _ in range(1000):
        ids.append(new_event_id())
        if len(ids) % 100 == 0:
            time.sleep(0.002)  # the next hundred in a later millisecond
    after = time.time_ns() // 1_000_000
    for text in ids:
        uuid = UUID(text)
        assert str(uuid) == text
        assert uuid.version == 7 and uuid.variant == RFC_4122
        assert before <= uuid.int >> 80 <= after
    assert len(set(ids)) == len(ids)
    hundreds = [ids[i : i + 100] for i in range(0, len(ids), 100)]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(hundreds))


def test_time_is_written_in_utc_and_read_back_as_the_same_instant() -> None:
    beijing = AT.astimezone(timezone(timedelta(hours=8)))
    record = _record(time=beijing)
    assert dict(record.headers)["ce_time"] == b"2026-11-22T10:00:00Z"
    envelope = Envelope.from_headers(record.headers)
    assert envelope is not None and envelope.time == beijing


@given(
    id=st.text(min_size=1).filter(lambda s: s.isprintable()),
    source=st.text(min_size=1).filter(lambda s: s.isprintable()),
    time=st.datetimes(timezones=st.timezones()).filter(lambda t: t.utcoffset() is not None),
    subject=st.none() | st.uuids().map(str),
)
def test_any_envelope_survives_its_headers(
    id: str, source: str, time: datetime, subject: str | None
) -> None:
    try:
        time.astimezone(UTC)
    except OverflowError:
        return  # a time at the edge of datetime's range with an offset that pushes it over
    envelope = Envelope(
        id=id, type="cn.canbao.registry.x.y.v1", source=source, time=time, subject=subject
    )
    decoded = Envelope.from_headers(envelope.to_headers())
    assert decoded is not None
    # The same instant; not `==` on the datetimes: PEP 495 makes a time in a zone's ambiguous
    # DST hour unequal to every time of another zone, even the same instant.
    assert decoded.time.astimezone(UTC) == time.astimezone(UTC)
    assert replace(decoded, time=time) == envelope


@pytest.mark.parametrize("time", ["2026-11-22t10:00:00z", "2026-11-22T18:00:00.123456789+08:00"])
def test_any_rfc_3339_time_is_read(time: str) -> None:
    envelope = Envelope.from_headers(_replace(_record().headers, "ce_time", time.encode()))
    assert envelope is not None and envelope.time.utcoffset() is not None


# -- messages that are not registry events ---------------------------------------------------------


def test_a_debezium_message_has_no_envelope() -> None:
    assert Envelope.from_headers([]) is None
    assert Envelope.from_headers([("__debezium.context", b"x"), ("dlq_reason", b"y")]) is None
    # Whatever its other headers hold: they are not an envelope's to refuse.
    twice = [("content-type", b"application/json"), ("content-type", b"text/plain")]
    assert Envelope.from_headers([*twice, ("traceparent", b"\xff")]) is None


def test_decoding_a_message_without_an_envelope_says_so() -> None:
    with pytest.raises(MalformedEnvelope, match="not a registry event"):
        decode([], b'{"before": null, "after": {}, "op": "c"}')


# -- a broken envelope, refused with the reason ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("ce_specversion", None, "missing header ce_specversion"),
        ("ce_specversion", b"0.3", "unsupported ce_specversion '0.3'"),
        ("ce_id", None, "missing header ce_id"),
        ("ce_id", b"", "ce_id is empty"),
        ("ce_type", None, "missing header ce_type"),
        ("ce_source", None, "missing header ce_source"),
        ("ce_time", None, "missing header ce_time"),
        ("ce_time", b"2026-11-22T10:00:00", "not an RFC 3339 date-time"),
        ("ce_time", b"22/11/2026", "not an RFC 3339 date-time"),
        ("ce_time", b"2026-02-30T10:00:00Z", "not a valid date and time"),
        ("ce_subject", b"", "ce_subject is empty"),
        ("ce_id", b"\xff\xfe", "ce_id is not UTF-8"),
        ("content-type", b"application/avro", "is not application/json"),
    ],
)
def test_a_broken_envelope_is_refused_with_the_reason(
    name: str, value: bytes | None, reason: str
) -> None:
    headers = _replace(_record().headers, name, value)
    with pytest.raises(MalformedEnvelope, match=reason):
        Envelope.from_headers(headers)


def test_a_header_given_twice_is_refused() -> None:
    headers = [*_record().headers, ("ce_type", b"cn.canbao.registry.person.updated.v1")]
    with pytest.raises(MalformedEnvelope, match="ce_type appears more than once"):
        Envelope.from_headers(headers)


def test_a_content_type_with_parameters_is_json_still() -> None:
    headers = _replace(_record().headers, "content-type", b"Application/JSON; charset=utf-8")
    assert Envelope.from_headers(headers) is not None


def test_an_unknown_extension_header_is_ignored() -> None:
    assert Envelope.from_headers([*_record().headers, ("ce_partitionkey", b"x")]) is not None


@pytest.mark.parametrize(
    "traceparent",
    [
        "not-a-traceparent",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ],
)
def test_an_invalid_traceparent_is_ignored_on_receipt_and_refused_on_sending(
    traceparent: str,
) -> None:
    headers = _replace(_record(tracestate="k=v").headers, "traceparent", traceparent.encode())
    envelope = Envelope.from_headers(headers)
    assert envelope is not None and (envelope.traceparent, envelope.tracestate) == (None, None)
    with pytest.raises(MalformedEnvelope, match="traceparent"):
        _record(traceparent=traceparent)


def test_a_later_trace_context_version_may_append_fields() -> None:
    future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
    envelope = Envelope.from_headers(_replace(_record().headers, "traceparent", future.encode()))
    assert envelope is not None and envelope.traceparent == future


def test_a_naive_time_is_refused_when_sending() -> None:
    with pytest.raises(MalformedEnvelope, match="UTC offset"):
        _record(time=datetime(2026, 11, 22, 10))


# -- a valid envelope around a value that does not match its type ----------------------------------


def test_an_unknown_event_type_is_named() -> None:
    headers = _replace(_record().headers, "ce_type", b"cn.canbao.registry.person.vanished.v1")
    with pytest.raises(UnknownEventType, match=r"person\.vanished\.v1") as raised:
        decode(headers, _record().value)
    assert raised.value.event_type == "cn.canbao.registry.person.vanished.v1"


def test_a_payload_that_fails_its_model_is_refused_without_quoting_it() -> None:
    record = _record()
    assert record.value is not None
    payload = json.loads(record.value)
    payload["masked_name"] = "张伟"  # clear personal data must not reach a dead-letter header
    payload["region_code"] = "5201"
    with pytest.raises(InvalidEventPayload) as raised:
        decode(record.headers, json.dumps(payload).encode())
    reason = raised.value.reason
    assert "person.registered.v1" in reason
    assert "masked_name" in reason and "region_code" in reason
    assert "张伟" not in reason and "5201" not in reason.replace("520102", "")


@pytest.mark.parametrize("value", [b"", b"{", b"\xff", b"[]", b"null"])
def test_a_value_that_is_not_the_events_json_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidEventPayload):
        decode(_record().headers, value)


def test_a_tombstone_on_a_registry_topic_is_refused() -> None:
    with pytest.raises(InvalidEventPayload, match="no value"):
        decode(_record().headers, None)


def test_the_subject_header_must_be_the_events_subject() -> None:
    other = PersonRegistered(**{**PERSON, "person_id": "5d2a8f3b-1e4c-4b7a-8f60-2c9d0e1a7b02"})
    with pytest.raises(InvalidEventPayload, match="ce_subject"):
        decode(_record().headers, other.model_dump_json().encode())


def test_every_contract_error_is_a_value_error_for_the_runtime_to_dead_letter() -> None:
    for error in (MalformedEnvelope, UnknownEventType, InvalidEventPayload):
        assert issubclass(error, ContractError) and issubclass(error, ValueError)
