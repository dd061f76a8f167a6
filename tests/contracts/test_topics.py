"""The topics: one change feed per source table of sources.md, the four registry topics keyed by
person and the units' keyed by unit, one dead-letter topic per service, and who sends and receives
what."""

from __future__ import annotations

import pytest

from canbao_contracts.events import EVENT_CLASSES, Event
from canbao_contracts.topics import (
    ALL_TOPICS,
    CDC_RETENTION,
    CDC_TOPICS,
    DEAD_LETTER_TOPICS,
    FEEDBACK,
    FEEDBACK_REPLIES,
    FEEDBACK_TOPICS,
    KAFKA_ACCESS,
    RECEIVES,
    REGISTRY_TOPICS,
    SENDS,
    SERVICES,
    UNITS,
    CleanupPolicy,
    dead_letter_topic,
    topic_by_name,
    writers,
)

# Every table of sources.md, as `schema.table`.
SOURCE_TABLES = {
    "si_core.ab01",
    "si_core.ac01",
    "si_core.ac02",
    "si_core.ac60",
    "medical.insured",
    "hukou.person",
    "hukou.resident_permit",
    "civil.cremation",
    "civil.dibao",
    "education.student",
    "justice.inmate",
    "employment.job_registration",
    "card.card_holder",
    "national.cross_region",
}


def test_topic_names_are_unique() -> None:
    names = [topic.name for topic in ALL_TOPICS]
    assert len(names) == len(set(names))


def test_every_source_table_has_its_change_feed() -> None:
    assert {topic.name for topic in CDC_TOPICS} == {f"cdc.{table}" for table in SOURCE_TABLES}


def test_the_registry_topics_are_keyed_by_person_but_the_units() -> None:
    names = {topic.name for topic in REGISTRY_TOPICS}
    assert names == {
        "registry.persons",
        "registry.facts",
        "registry.statuses",
        "registry.collections",
        "registry.units",
    }
    for topic in REGISTRY_TOPICS:
        assert topic.key.startswith("unit_id" if topic is UNITS else "person_id")


@pytest.mark.parametrize("cls", EVENT_CLASSES)
def test_every_event_travels_on_a_registry_or_feedback_topic(cls: type[Event]) -> None:
    for topic in cls.topics():
        assert topic in (*REGISTRY_TOPICS, *FEEDBACK_TOPICS)
        assert topic_by_name(topic.name) is topic


@pytest.mark.parametrize("topic", (*REGISTRY_TOPICS, *FEEDBACK_TOPICS), ids=lambda t: t.name)
def test_every_registry_topic_carries_events(topic: object) -> None:
    assert any(topic in cls.topics() for cls in EVENT_CLASSES)


def test_each_business_system_has_a_feedback_topic_and_a_replies_topic() -> None:
    assert {t.name for t in FEEDBACK_TOPICS} == {
        name
        for system in ("si_core", "medical", "card", "employment")
        for name in (f"feedback.{system}", f"feedback.{system}.replies")
    }
    # Personal data in clear, like the change feeds: kept as briefly.
    assert all(
        t.retention == CDC_RETENTION and t.cleanup_policy is CleanupPolicy.DELETE
        for t in FEEDBACK_TOPICS
    )
    assert set(FEEDBACK.values()) <= set(SENDS["identity"])
    assert set(FEEDBACK_REPLIES.values()) <= set(RECEIVES["identity"])


def test_a_business_system_reads_only_its_requests_and_writes_only_its_replies() -> None:
    access = KAFKA_ACCESS["feedback-si-core"]
    assert access.reads == (FEEDBACK["si_core"],)
    assert access.writes == (FEEDBACK_REPLIES["si_core"],)
    assert writers(FEEDBACK["si_core"]) == ("identity",)
    assert writers(FEEDBACK_REPLIES["card"]) == ("feedback-card",)


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_dead_letter_topic(service: str) -> None:
    topic = dead_letter_topic(service)
    assert topic.name == f"deadletter.{service}" and topic in DEAD_LETTER_TOPICS
    assert 1 <= topic.partitions <= 3


def test_an_unknown_service_or_topic_is_an_error() -> None:
    with pytest.raises(KeyError, match="unknown service 'billing'"):
        dead_letter_topic("billing")
    with pytest.raises(KeyError, match=r"registry\.people"):
        topic_by_name("registry.people")


def test_partitions_let_consumers_scale_out_and_keep_a_persons_order() -> None:
    assert all(topic.partitions == 12 for topic in REGISTRY_TOPICS)
    assert all(topic.partitions >= 3 for topic in CDC_TOPICS)


def test_compacted_topics_are_kept_until_compacted_and_carry_whole_states() -> None:
    for topic in ALL_TOPICS:
        if topic.cleanup_policy is CleanupPolicy.COMPACT:
            assert topic.retention is None
            assert topic.name in {"registry.persons", "registry.statuses", "registry.units"}


def test_topics_with_personal_data_in_clear_are_not_kept_forever() -> None:
    clear = ("registry.collections", *(f"cdc.{table}" for table in SOURCE_TABLES))
    for name in (*clear, *(t.name for t in FEEDBACK_TOPICS)):
        retention = topic_by_name(name).retention
        assert retention is not None and retention.days <= 30


def test_dead_letters_are_never_expired() -> None:
    assert all(topic.retention is None for topic in DEAD_LETTER_TOPICS)


def test_who_sends_and_receives_what_follows_the_architecture() -> None:
    names = {s: {t.name for t in topics} for s, topics in SENDS.items()}
    assert names == {
        "identity": {"registry.persons", "registry.facts", "registry.units"}
        | {t.name for t in FEEDBACK.values()},
        "matching": {"registry.statuses"},
        "survey": {"registry.collections"},
        "reporting": set(),
        "gateway": set(),
    }
    received = {s: {t.name for t in topics} for s, topics in RECEIVES.items()}
    assert received["identity"] == {t.name for t in CDC_TOPICS} | {"registry.collections"} | {
        t.name for t in FEEDBACK_REPLIES.values()
    }
    assert received["matching"] == {"registry.persons", "registry.facts", "registry.collections"}
    # Survey lists people by the gaps and masked names identity publishes (as reporting does).
    assert received["survey"] == {"registry.persons", "registry.statuses"}
    # Reporting names the employers of its labour inspection list by registry.units.
    assert received["reporting"] == {"registry.persons", "registry.statuses", "registry.units"}
    # The gateway notifies partners' DCI subscriptions of changed verdicts.
    assert received["gateway"] == {"registry.statuses"}


def test_every_registry_topic_has_a_sender_and_a_receiver() -> None:
    sent = {topic for topics in SENDS.values() for topic in topics}
    received = {topic for topics in RECEIVES.values() for topic in topics}
    assert set(REGISTRY_TOPICS) <= sent & received
