"""The contracts as documents for everyone who does not read Python (architecture.md "Events are
contracts"): one JSON Schema per event type and an AsyncAPI 3.0 document of every topic, message
and which service sends or receives it. `make schemas` writes them to `contracts/schemas/`, which
is committed; tests/contracts/test_schemas.py fails when they are stale.

    python -m canbao_contracts.schemas <out_dir>

Output is deterministic (sorted keys, stable order, trailing newline), so staleness is a byte
comparison. The AsyncAPI document is YAML; PyYAML is a development dependency of the workspace,
imported only here, so the contracts package itself needs nothing beyond pydantic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from canbao_contracts.events import EVENT_CLASSES, Event
from canbao_contracts.topics import (
    ALL_TOPICS,
    CDC_TOPICS,
    RECEIVES,
    SENDS,
    Topic,
    dead_letter_topic,
)

ASYNCAPI_VERSION: Final = "3.0.0"
KAFKA_BINDING_VERSION: Final = "0.5.0"
CONTRACTS_VERSION: Final = "1.0.0"  # bump with any change of an event, a topic or an operation
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_PAYLOAD_FORMAT: Final = "application/schema+json;version=draft-2020-12"
_REQUIRED_HEADERS: Final = (
    "ce_specversion",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_time",
    "ce_subject",
    "content-type",
)
Document = dict[str, Any]


def json_schemas() -> dict[str, Document]:
    """Event type → the JSON Schema of its payload (draft 2020-12, as pydantic writes it)."""
    return {
        cls.type: {"$schema": JSON_SCHEMA_DIALECT, **cls.model_json_schema()}
        for cls in EVENT_CLASSES
    }


def schema_path(event_type: str) -> str:
    return f"json/{event_type}.schema.json"


def asyncapi_document() -> Document:
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "canbao registry events",
            "version": CONTRACTS_VERSION,
            "description": (
                "The Kafka topics of the universal social insurance registry (全民参保登记): "
                "source change feeds, the registry's events, dead letters. Registry events are "
                "CloudEvents 1.0 in Kafka binary mode (ce_* headers, JSON value), keyed by "
                "person_id. Generated from canbao_contracts; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {_channel_id(topic): _channel(topic) for topic in ALL_TOPICS},
        "operations": _operations(),
        "components": {"messages": _messages(), "schemas": _shared_schemas()},
    }


def render() -> dict[str, bytes]:
    """Every generated file: path relative to the output directory → its bytes."""
    import yaml  # a development dependency (see the module's docstring)

    files = {
        schema_path(event_type): (
            json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        ).encode()
        for event_type, schema in json_schemas().items()
    }
    files["asyncapi.yaml"] = yaml.safe_dump(
        asyncapi_document(), sort_keys=True, allow_unicode=True, default_flow_style=False, width=100
    ).encode()
    return dict(sorted(files.items()))


def write(out_dir: Path) -> list[Path]:
    """Write every file under `out_dir`, removing schemas of event types that no longer exist."""
    files = render()
    for stale in (out_dir / "json").glob("*.schema.json"):
        if stale.relative_to(out_dir).as_posix() not in files:
            stale.unlink()
    written = []
    for relative, content in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


# -- channels: one per topic -----------------------------------------------------------------------


def _channel_id(topic: Topic) -> str:
    return topic.name.replace(".", "_")  # AsyncAPI 3 ids are ^[A-Za-z0-9_\-]+$


def _events_on(topic: Topic) -> list[type[Event]]:
    return [cls for cls in EVENT_CLASSES if topic in cls.topics()]


def _message_ids(topic: Topic) -> list[str]:
    if topic in CDC_TOPICS:
        return ["DebeziumChangeEvent"]
    if topic.name.startswith("deadletter."):
        return ["DeadLetter"]
    return [cls.__name__ for cls in _events_on(topic)]


def _channel(topic: Topic) -> Document:
    retention_ms = -1 if topic.retention is None else int(topic.retention.total_seconds() * 1000)
    return {
        "address": topic.name,
        "description": f"{topic.description} Key: {topic.key}.",
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in _message_ids(topic)},
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": {
                    "cleanup.policy": [topic.cleanup_policy.value],
                    "retention.ms": retention_ms,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


# -- operations: who sends and who receives --------------------------------------------------------


def _operations() -> Document:
    operations: Document = {}
    for service, topics in SENDS.items():
        for topic in topics:
            operations[f"{service}_sends_{_channel_id(topic)}"] = _operation(service, "send", topic)
    for service, topics in RECEIVES.items():
        for topic in topics:
            operation = _operation(service, "receive", topic)
            operations[f"{service}_receives_{_channel_id(topic)}"] = operation
        if topics:  # a consumer dead-letters what it cannot apply (architecture.md)
            dead_letters = dead_letter_topic(service)
            operations[f"{service}_sends_{_channel_id(dead_letters)}"] = _operation(
                service, "send", dead_letters
            )
    return dict(sorted(operations.items()))


def _operation(service: str, action: str, topic: Topic) -> Document:
    channel = _channel_id(topic)
    operation: Document = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": f"{service} {action}s {topic.name}",
        "tags": [{"name": service}],
        "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in _message_ids(topic)],
    }
    if action == "receive":  # each service is one consumer group, named after it
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [service]},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        }
    return operation


# -- messages and shared schemas -------------------------------------------------------------------


def _messages() -> Document:
    messages: Document = {cls.__name__: _event_message(cls) for cls in EVENT_CLASSES}
    messages["DebeziumChangeEvent"] = {
        "name": "DebeziumChangeEvent",
        "title": "Debezium change event (sources.md)",
        "summary": "One change of one source row; a delete is followed by a tombstone.",
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/DebeziumValue"},
        "bindings": {
            "kafka": {
                "key": {"type": "object", "description": "the row's primary key columns (JSON)"},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "A message its consumer could not apply",
        "summary": (
            "The original key, value and headers unchanged, plus the messaging runtime's dlq_* "
            "headers: the reason and the original topic, partition and offset."
        ),
        "payload": {"description": "the original value (any format; null for a tombstone)"},
    }
    return dict(sorted(messages.items()))


def _event_message(cls: type[Event]) -> Document:
    doc = (cls.__doc__ or "").strip()
    return {
        "name": cls.type,
        "title": cls.__name__,
        "summary": " ".join(doc.split("\n\n", 1)[0].split()),  # the first paragraph, on one line
        "contentType": "application/json",
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventsHeaders"},
                {"type": "object", "properties": {"ce_type": {"const": cls.type}}},
            ]
        },
        "payload": {"schemaFormat": _PAYLOAD_FORMAT, "schema": {"$ref": schema_path(cls.type)}},
        "bindings": {
            "kafka": {
                "key": _key_schema(cls.topics()[0].key),
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _key_schema(key: str) -> Document:
    """A UUID key (a person_id, a feedback_id) or another text (a source record's key)."""
    if "UUID" in key:
        return {"type": "string", "format": "uuid", "description": key}
    return {"type": "string", "description": key}


def _shared_schemas() -> Document:
    text = {"type": "string", "minLength": 1}
    return {
        "CloudEventsHeaders": {
            "type": "object",
            "description": "CloudEvents 1.0 in Kafka binary mode, with W3C Trace Context.",
            "required": [*_REQUIRED_HEADERS],
            "properties": {
                "ce_specversion": {"type": "string", "const": "1.0"},
                "ce_id": {**text, "description": "unique per event: consumers' idempotency key"},
                "ce_type": {**text, "description": "reverse-DNS event type with its version"},
                "ce_source": {**text, "description": "the producing service"},
                "ce_time": {"type": "string", "format": "date-time", "description": "RFC 3339"},
                "ce_subject": {**text, "description": "the Kafka key: the person_id"},
                "content-type": {"type": "string", "const": "application/json"},
                "traceparent": {"type": "string", "description": "W3C Trace Context"},
                "tracestate": {"type": "string", "maxLength": 512},
            },
        },
        "DebeziumValue": {
            "description": "The change envelope, bare or wrapped as {schema, payload} where the "
            "JSON converter embeds schemas; null for a tombstone.",
            "type": ["object", "null"],
            "properties": {
                "before": {"type": ["object", "null"]},
                "after": {"type": ["object", "null"]},
                "source": {"type": "object", "description": "lsn, txId, ts_ms, schema, table…"},
                "op": {"type": "string", "enum": ["r", "c", "u", "d"]},
                "ts_ms": {"type": "integer"},
                "schema": {"type": "object"},
                "payload": {"type": "object"},
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m canbao_contracts.schemas <out_dir>", file=sys.stderr)
        return 2
    written = write(Path(args[0]))
    print(f"wrote {len(written)} files to {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
