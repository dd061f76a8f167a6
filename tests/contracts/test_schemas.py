"""The exported documents: a JSON Schema per event type and the AsyncAPI document, committed
under contracts/schemas/ and never stale."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml

from canbao_contracts import schemas
from canbao_contracts.events import EVENT_CLASSES
from canbao_contracts.topics import ALL_TOPICS, RECEIVES, SENDS

COMMITTED = Path(__file__).resolve().parents[2] / "contracts" / "schemas"


def _files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_the_committed_schemas_are_up_to_date(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    fresh, committed = _files(tmp_path), _files(COMMITTED) if COMMITTED.is_dir() else {}
    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )
    if stale:
        first = stale[0]
        diff = difflib.unified_diff(
            committed.get(first, b"").decode().splitlines(),
            fresh.get(first, b"").decode().splitlines(),
            f"committed/{first}",
            f"generated/{first}",
            lineterm="",
            n=1,
        )
        pytest.fail(
            f"contracts/schemas is stale ({', '.join(stale)}): run `make schemas` and commit the "
            "result.\n" + "\n".join(list(diff)[:40])
        )


def test_generation_is_deterministic() -> None:
    assert schemas.render() == schemas.render()


def test_writing_removes_the_schema_of_an_event_type_that_no_longer_exists(tmp_path: Path) -> None:
    gone = tmp_path / "json" / "cn.canbao.registry.person.vanished.v1.schema.json"
    gone.parent.mkdir(parents=True)
    gone.write_text("{}")
    schemas.write(tmp_path)
    assert not gone.exists()


def test_one_json_schema_per_event_type() -> None:
    documents = schemas.json_schemas()
    assert set(documents) == {cls.type for cls in EVENT_CLASSES}
    for document in documents.values():
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert document["additionalProperties"] is False


def test_field_descriptions_reach_the_schema() -> None:
    document = schemas.json_schemas()["cn.canbao.registry.collection.approved.v1"]
    assert "PERSONAL DATA" in document["properties"]["items"]["description"]


# -- the AsyncAPI document -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(schemas.render()["asyncapi.yaml"])
    return document


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_every_reference_resolves(asyncapi: dict[str, Any]) -> None:
    files = schemas.render()
    for ref in _refs(asyncapi):
        if ref.startswith("#/"):
            _resolve(asyncapi, ref)
        else:
            assert ref in files, f"{ref} is not a generated file"


def test_every_topic_is_a_channel_with_its_kafka_binding(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    channels = {channel["address"]: channel for channel in asyncapi["channels"].values()}
    assert set(channels) == {topic.name for topic in ALL_TOPICS}
    for topic in ALL_TOPICS:
        kafka = channels[topic.name]["bindings"]["kafka"]
        assert kafka["partitions"] == topic.partitions
        assert kafka["topicConfiguration"]["cleanup.policy"] == [topic.cleanup_policy.value]


def test_every_event_is_a_message_with_cloudevents_headers(asyncapi: dict[str, Any]) -> None:
    messages = asyncapi["components"]["messages"]
    for cls in EVENT_CLASSES:
        message = messages[cls.__name__]
        assert message["name"] == cls.type
        assert message["payload"]["schema"] == {"$ref": schemas.schema_path(cls.type)}
        ce_type = message["headers"]["allOf"][1]["properties"]["ce_type"]
        assert ce_type == {"const": cls.type}


def test_operations_say_who_sends_and_who_receives_what(asyncapi: dict[str, Any]) -> None:
    declared = set()
    for operation in asyncapi["operations"].values():
        channel = _resolve(asyncapi, operation["channel"]["$ref"])
        service = operation["tags"][0]["name"]
        declared.add((service, operation["action"], channel["address"]))
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
    expected = {(s, "send", t.name) for s, topics in SENDS.items() for t in topics}
    expected |= {(s, "receive", t.name) for s, topics in RECEIVES.items() for t in topics}
    expected |= {(s, "send", f"deadletter.{s}") for s, topics in RECEIVES.items() if topics}
    assert declared == expected


def test_a_receiver_is_the_consumer_group_named_after_its_service(asyncapi: dict[str, Any]) -> None:
    for operation in asyncapi["operations"].values():
        if operation["action"] == "receive":
            group = operation["bindings"]["kafka"]["groupId"]
            assert group["enum"] == [operation["tags"][0]["name"]]
