"""CloudEvents 1.0 on Kafka in **binary mode** (CloudEvents Kafka protocol binding §3.2): the
event's JSON is the message value; its attributes are headers `ce_<attribute>`; `content-type`
is the data's media type; the key is the event's subject (the person_id, architecture.md
"Ordering by person"). W3C Trace Context `traceparent` / `tracestate` ride along so a consumer's
span continues the producer's trace.

A message without any `ce_` header (a Debezium change event on a `cdc.*` topic) has no envelope;
one with `ce_` headers that break the rules is refused with the reason, so the messaging runtime
can dead-letter it (architecture.md "nothing is silently dropped").
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from pydantic import ValidationError

from canbao_contracts.events import EVENT_TYPES, Event

SPEC_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/json"
CE_SPECVERSION: Final = "ce_specversion"
CE_ID: Final = "ce_id"
CE_TYPE: Final = "ce_type"
CE_SOURCE: Final = "ce_source"
CE_TIME: Final = "ce_time"
CE_SUBJECT: Final = "ce_subject"
CONTENT_TYPE_HEADER: Final = "content-type"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_SPEC_VERSION: Final = SPEC_VERSION.encode()
_CONTENT_TYPE: Final = CONTENT_TYPE.encode()
_READ: Final = frozenset(
    {
        CE_SPECVERSION,
        CE_ID,
        CE_TYPE,
        CE_SOURCE,
        CE_TIME,
        CE_SUBJECT,
        CONTENT_TYPE_HEADER,
        TRACEPARENT,
        TRACESTATE,
    }
)

# RFC 3339 §5.6 date-time (the `T` and `Z` may be lower case); fromisoformat reads the rest.
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# W3C Trace Context §3.2: version-traceid-parentid-flags, lower-case hex; a later version may
# append fields. Version ff and all-zero ids are invalid.
_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?")
_TRACESTATE: Final = re.compile(r"[\x20-\x7e]{0,512}")


class ContractError(ValueError):
    """A message that does not match the contracts; `reason` is fit for a dead-letter header
    (it never quotes the message's values, which may be personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEnvelope(ContractError):
    """`ce_` headers present but not a valid CloudEvents 1.0 binary-mode envelope."""


class UnknownEventType(ContractError):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}: no contract defines it")
        self.event_type = event_type


class InvalidEventPayload(ContractError):
    """The value does not validate against the model its `ce_type` names."""


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    source: str
    time: datetime
    subject: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def __post_init__(self) -> None:
        for name in ("id", "type", "source", "subject"):
            if getattr(self, name) == "":
                raise MalformedEnvelope(_empty(f"ce_{name}"))
        if self.time.utcoffset() is None:
            raise MalformedEnvelope("ce_time has no UTC offset (RFC 3339 requires one)")
        if self.traceparent is not None and not _valid_traceparent(self.traceparent):
            raise MalformedEnvelope("traceparent is not a W3C Trace Context traceparent")
        if self.tracestate is not None and not _TRACESTATE.fullmatch(self.tracestate):
            raise MalformedEnvelope("tracestate is not at most 512 printable ASCII characters")

    def to_headers(self) -> list[tuple[str, bytes]]:
        time = self.time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        headers = [
            (CE_SPECVERSION, _SPEC_VERSION),
            (CE_ID, self.id.encode()),
            (CE_TYPE, self.type.encode()),
            (CE_SOURCE, self.source.encode()),
            (CE_TIME, time.encode()),
        ]
        if self.subject is not None:
            headers.append((CE_SUBJECT, self.subject.encode()))
        headers.append((CONTENT_TYPE_HEADER, _CONTENT_TYPE))
        if self.traceparent is not None:
            headers.append((TRACEPARENT, self.traceparent.encode()))
            if self.tracestate is not None:
                headers.append((TRACESTATE, self.tracestate.encode()))
        return headers

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes]]) -> Envelope | None:
        """The envelope, or None when no header starts with `ce_` (e.g. a Debezium message).

        Read for every message consumed, so each rule is checked once, here: the envelope is
        made without `__post_init__` checking them all again."""
        found = _read(headers)
        if found is None:
            return None
        version = found.get(CE_SPECVERSION)
        if version != SPEC_VERSION:
            raise MalformedEnvelope(
                f"missing header {CE_SPECVERSION}"
                if version is None
                else f"unsupported {CE_SPECVERSION} {version!r} (expected {SPEC_VERSION!r})"
            )
        for name in (CE_ID, CE_TYPE, CE_SOURCE, CE_TIME):
            if not found.get(name):
                raise MalformedEnvelope(
                    f"missing header {name}" if name not in found else _empty(name)
                )
        if found.get(CE_SUBJECT) == "":
            raise MalformedEnvelope(_empty(CE_SUBJECT))
        content_type = found.get(CONTENT_TYPE_HEADER)
        if (
            content_type is not None
            and content_type != CONTENT_TYPE
            and _media_type(content_type) != CONTENT_TYPE
        ):
            raise MalformedEnvelope(f"content-type {content_type!r} is not {CONTENT_TYPE}")
        # W3C Trace Context §3.2.2.2 / §3.3.1.5: an invalid traceparent is ignored (the consumer
        # starts a new trace), and tracestate with it; it never costs the event.
        traceparent = found.get(TRACEPARENT)
        if traceparent is not None and not _valid_traceparent(traceparent):
            traceparent = None
        tracestate = found.get(TRACESTATE) if traceparent is not None else None
        if tracestate is not None and not _TRACESTATE.fullmatch(tracestate):
            tracestate = None
        envelope = object.__new__(cls)
        # Frozen: its fields are set through its __dict__, as object.__setattr__ would, at once.
        envelope.__dict__.update(
            id=found[CE_ID],
            type=found[CE_TYPE],
            source=found[CE_SOURCE],
            time=_parse_time(found[CE_TIME]),  # RFC 3339: always with its UTC offset
            subject=found.get(CE_SUBJECT),
            traceparent=traceparent,
            tracestate=tracestate,
        )
        return envelope


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def encode(
    event: Event,
    *,
    source: str,
    id: str | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> KafkaRecord:
    """`event` as a Kafka record of its topic: key = subject, value = JSON, CloudEvents headers.
    `source` names the producing service (`ce_source`, e.g. "/canbao/identity")."""
    subject = event.subject
    envelope = Envelope(
        id=id if id is not None else new_event_id(),
        type=event.type,
        source=source,
        time=time if time is not None else datetime.now(UTC),
        subject=subject,
        traceparent=traceparent,
        tracestate=tracestate,
    )
    return KafkaRecord(
        topic=event.destination.name,
        key=subject.encode(),
        value=event.model_dump_json().encode(),
        headers=envelope.to_headers(),
    )


def new_event_id() -> str:
    """A time-ordered (version 7, RFC 9562 §5.7) UUID as text, as `str(uuid.UUID(...))` writes
    it: an event's `ce_id`. Its first 48 bits are the Unix time in milliseconds, the other 74
    random (RFC 9562 §6.9: unguessable, unique without coordination). In time order, the ids a
    consumer records (processed_messages, keyed by event id) are inserted at the end of their
    index, on pages already in memory; random ones (version 4) land anywhere in an index of
    millions, each insert a page to read and later write. Spelt out rather than through
    `uuid`, as it is paid for every event published."""
    octets = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big"))
    octets += os.urandom(10)
    octets[6] = octets[6] & 0x0F | 0x70  # version 7
    octets[8] = octets[8] & 0x3F | 0x80  # the RFC 9562 variant
    text = octets.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def decode(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> tuple[Envelope, Event]:
    """The envelope and the event of a registry message. Raises MalformedEnvelope,
    UnknownEventType or InvalidEventPayload (all ContractError, a ValueError) with the reason."""
    envelope = Envelope.from_headers(headers)
    if envelope is None:
        raise MalformedEnvelope("no CloudEvents headers (ce_*): not a registry event")
    return envelope, decode_event(envelope, value)


def decode_event(envelope: Envelope, value: bytes | None) -> Event:
    """The event `envelope` announces, read from the message's value (for an envelope already
    read from the headers). Raises UnknownEventType or InvalidEventPayload with the reason."""
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise UnknownEventType(envelope.type)
    if value is None:
        raise InvalidEventPayload(f"{envelope.type}: the message has no value")
    try:
        event = model.model_validate_json(value)
    except ValidationError as error:
        raise InvalidEventPayload(f"{envelope.type}: {_problems(error)}") from None
    if envelope.subject is not None and envelope.subject != event.subject:
        raise InvalidEventPayload(
            f"{envelope.type}: ce_subject {envelope.subject} is not the event's subject "
            f"{event.subject}"
        )
    return event


def _read(headers: Sequence[tuple[str, bytes]]) -> dict[str, str] | None:
    """The headers an envelope is made of, by name; None when no header starts with `ce_`
    (whatever the others hold: they are not an envelope's)."""
    by_name = dict(headers)
    if CE_SPECVERSION not in by_name and not any(name.startswith("ce_") for name in by_name):
        return None
    if len(by_name) != len(headers):  # a name twice: the envelope's own may not be
        named = [name for name, _ in headers if name in _READ]
        repeated = next((name for name in named if named.count(name) > 1), None)
        if repeated is not None:
            raise MalformedEnvelope(f"header {repeated} appears more than once")
    found: dict[str, str] = {}
    for name in _READ:
        raw = by_name.get(name)
        if raw is None:
            continue
        try:
            found[name] = raw.decode() if type(raw) is bytes else bytes(raw).decode()
        except UnicodeDecodeError:
            raise MalformedEnvelope(f"header {name} is not UTF-8") from None
    return found


def _parse_time(text: str) -> datetime:
    if not _RFC3339.fullmatch(text):
        raise MalformedEnvelope(f"{CE_TIME} {text!r} is not an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:
        raise MalformedEnvelope(f"{CE_TIME} {text!r} is not a valid date and time") from None


def _empty(header: str) -> str:
    return f"{header} is empty (CloudEvents 1.0: non-empty)"


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _valid_traceparent(value: str) -> bool:
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return False
    version, trace_id, parent_id, rest = match.groups()
    return (
        version != "ff"
        and (version != "00" or rest is None)  # version 00 has exactly four fields
        and trace_id != "0" * 32
        and parent_id != "0" * 16
    )


def _problems(error: ValidationError) -> str:
    """Where and what, never the input (pydantic would echo personal data)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or '<root>'}: {e['msg']}"
        for e in error.errors(include_input=False, include_url=False)
    )
