"""Every Kafka topic of the registry, as data (architecture.md "Events are contracts").

Deployment (`deploy/generate.py`), the local stack and the test broker create exactly these;
services subscribe to and publish on them through `RECEIVES` and `SENDS`, which the AsyncAPI
document (`canbao_contracts.schemas`) also renders.

Partitions bound how far a consumer group scales out (one partition, at most one busy consumer;
architecture.md "Scale"), and cannot shrink once a topic exists, so they are sized for a
50-million-person province rather than for the demo. Retention says how long the bus itself
remembers; every choice is explained where it is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class CleanupPolicy(StrEnum):
    """Kafka's `cleanup.policy`."""

    DELETE = "delete"  # drop whole segments older than the retention
    COMPACT = "compact"  # keep the newest message per key, forever


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    key: str  # what the Kafka message key holds
    partitions: int
    retention: timedelta | None  # None: kept until compacted away, or forever
    cleanup_policy: CleanupPolicy
    description: str


SERVICES: Final = ("identity", "matching", "survey", "reporting", "gateway")

# -- Change feeds of the source systems (sources.md; Debezium topic prefix `cdc`) ------------------

# 6 partitions: identity resolves every table in one consumer group, and the biggest tables (ac02,
# medical.insured, hukou.person: ~1-2 rows per person) carry the month-end bursts.
CDC_PARTITIONS: Final = 6
# 14 days of `delete`, not compaction. The messages hold names and ID numbers in clear, and the
# bus should not become a second, permanent copy of ten departments' data (domain.md §2.5). Two
# weeks outlast the longest public holiday (Spring Festival, 8 days) plus the time to fix and
# replay; rebuilding identity from scratch takes a new (incremental) Debezium snapshot instead.
CDC_RETENTION: Final = timedelta(days=14)

# schema.table → primary key columns, as sources.md declares them.
_SOURCE_TABLES: Final = {
    "si_core.ab01": ("aab001", "units of the core insurance system"),
    "si_core.ac01": ("aac001", "persons of the core insurance system"),
    "si_core.ac02": (
        "aac001, aae140, aab301", "enrolments (pension, unemployment, injury, maternity)"
    ),
    "si_core.ac60": ("id", "benefits being paid"),
    "medical.insured": ("psn_no, insutype", "medical insurance enrolments"),
    "hukou.person": ("sfzh", "public security household register"),
    "hukou.resident_permit": ("jzzh", "residence permits of non-local long-term residents"),
    "civil.cremation": ("id", "civil affairs cremation records (deaths)"),
    "civil.dibao": ("id", "minimum living allowance recipients"),
    "education.student": ("xh", "students"),
    "justice.inmate": ("id", "people in custody"),
    "employment.job_registration": ("id", "employment registrations"),
    "card.card_holder": ("aaz500", "social security card holders"),
    "national.cross_region": ("id", "provincial and national registry comparison results"),
}  # fmt: skip

CDC_TOPICS: Final = tuple(
    Topic(
        name=f"cdc.{table}",
        key=f"the row's primary key ({columns}) as Debezium's JSON key",
        partitions=CDC_PARTITIONS,
        retention=CDC_RETENTION,
        cleanup_policy=CleanupPolicy.DELETE,
        description=f"Debezium change events of {table}: {what} (sources.md).",
    )
    for table, (columns, what) in _SOURCE_TABLES.items()
)

# -- The registry's own topics (architecture.md), keyed by person_id but for the units -------------

# 12 partitions: a person's events stay in order on one partition and a consumer group scales to
# 12 instances; 12 divides evenly among 1, 2, 3, 4 and 6 instances.
REGISTRY_PARTITIONS: Final = 12
_PERSON_KEY: Final = "person_id (UUID, canonical text form)"

# Compacted, kept forever: every event on these two topics carries the person's whole current
# state (masked, no clear personal data), so the newest message per person is that state and a
# new or rebuilt consumer (reporting, a second matching) reads the topic from the beginning.
PERSONS: Final = Topic(
    name="registry.persons",
    key=_PERSON_KEY + "; a merge is keyed by the merged (retired) id",
    partitions=REGISTRY_PARTITIONS,
    retention=None,
    cleanup_policy=CleanupPolicy.COMPACT,
    description="Identity's people: registered, updated, merged, deceased; masked.",
)
STATUSES: Final = Topic(
    name="registry.statuses",
    key=_PERSON_KEY,
    partitions=REGISTRY_PARTITIONS,
    retention=None,
    cleanup_policy=CleanupPolicy.COMPACT,
    description="Matching's verdict per person: status per insurance, flags, survey reasons.",
)
# A person has many facts under one key, so compaction would keep only the last one: `delete`
# instead. 30 days cover a consumer outage across a month-end burst; rebuilding matching from
# nothing is identity re-asserting its current facts (same fact_id: replaces, never adds).
FACTS: Final = Topic(
    name="registry.facts",
    key=_PERSON_KEY,
    partitions=REGISTRY_PARTITIONS,
    retention=timedelta(days=30),
    cleanup_policy=CleanupPolicy.DELETE,
    description="Canonical, source-agnostic facts about people, asserted and retracted.",
)
# The one registry topic with personal data in clear (collected values, see events.collection):
# kept only as long as the change feeds; survey keeps every collection and can publish it again.
COLLECTIONS: Final = Topic(
    name="registry.collections",
    key=_PERSON_KEY + "; the collection_id for a person not yet registered",
    partitions=REGISTRY_PARTITIONS,
    retention=CDC_RETENTION,
    cleanup_policy=CleanupPolicy.DELETE,
    description="Approved collections (counter, kiosk, mobile, survey, partner) to apply.",
)
# The one registry topic not about people: the units (employers) of the core insurance system
# (si_core.ab01, sources.md), so that reporting's lists for labour inspection name the unit, not
# only its AAB001. Keyed by the unit, so a unit's changes keep their order. Compacted, kept
# forever, like registry.persons: every event is the unit's whole state (or its deletion), and a
# new consumer reads the topic from the beginning. A unit's name and credit code are the public
# particulars of its registration, not a person's data.
UNITS: Final = Topic(
    name="registry.units",
    key="unit_id: AAB001 of si_core.ab01, as the source writes it",
    partitions=REGISTRY_PARTITIONS,
    retention=None,
    cleanup_policy=CleanupPolicy.COMPACT,
    description="The core insurance system's units: id, credit code, name, type, region.",
)
REGISTRY_TOPICS: Final = (PERSONS, FACTS, STATUSES, COLLECTIONS, UNITS)

# -- Write-back to the business systems (44号 Art.22, 41号 §4) ------------------------------------

# The business systems that own items of an insured person the registry collects (their name,
# gender, birth date, phone, addresses: sources.md): an approved change to such an item is asked of
# the system on its own topic, and the system answers on its replies topic.
FEEDBACK_SYSTEMS: Final = ("si_core", "medical", "card", "employment")
# 3 partitions: a few requests a day per clerk, far below one consumer's pace; more than one lets
# a business system run a second reader. 14 days of `delete`, like the change feeds: the requests
# carry the collected values in clear (a phone, an address) and the replies answer them.
FEEDBACK_PARTITIONS: Final = 3


def _feedback_topic(system: str) -> Topic:
    return Topic(
        name=f"feedback.{system}",
        key="the source record's key in the system (FactSource.record_key: `column=value` pairs)",
        partitions=FEEDBACK_PARTITIONS,
        retention=CDC_RETENTION,
        cleanup_policy=CleanupPolicy.DELETE,
        description=(
            f"Approved changes for {system} to apply to its own record of an insured person "
            "(44号 Art.22), with the evidence and who approved; PERSONAL DATA in clear."
        ),
    )


def _replies_topic(system: str) -> Topic:
    return Topic(
        name=f"feedback.{system}.replies",
        key="feedback_id (UUID, canonical text form) of the request answered",
        partitions=FEEDBACK_PARTITIONS,
        retention=CDC_RETENTION,
        cleanup_policy=CleanupPolicy.DELETE,
        description=f"{system}'s answers to its feedback requests: applied, or refused and why.",
    )


FEEDBACK: Final[Mapping[str, Topic]] = MappingProxyType(
    {system: _feedback_topic(system) for system in FEEDBACK_SYSTEMS}
)
FEEDBACK_REPLIES: Final[Mapping[str, Topic]] = MappingProxyType(
    {system: _replies_topic(system) for system in FEEDBACK_SYSTEMS}
)
FEEDBACK_TOPICS: Final = (*FEEDBACK.values(), *FEEDBACK_REPLIES.values())

# -- Dead letters (architecture.md "nothing is silently dropped") ----------------------------------

# Kept forever: a dead letter is the only copy of a message its consumer never applied (the
# runtime's dead_letters table keeps the reason, not the message), so expiring it would be the
# silent drop architecture.md forbids. They are rare; operators delete records once replayed.
# Partitions: identity and matching take the two big streams (cdc.*, registry.facts); 1 elsewhere.
_DEAD_LETTER_PARTITIONS: Final = {"identity": 3, "matching": 3}

DEAD_LETTER_TOPICS: Final = tuple(
    Topic(
        name=f"deadletter.{service}",
        key="the original message's key, unchanged",
        partitions=_DEAD_LETTER_PARTITIONS.get(service, 1),
        retention=None,
        cleanup_policy=CleanupPolicy.DELETE,
        description=(
            f"Messages {service} could not apply: original key, value and headers, plus the "
            "messaging runtime's dlq_* headers (reason, original topic, partition, offset)."
        ),
    )
    for service in SERVICES
)

ALL_TOPICS: Final = (*CDC_TOPICS, *REGISTRY_TOPICS, *FEEDBACK_TOPICS, *DEAD_LETTER_TOPICS)
_BY_NAME: Final = MappingProxyType({topic.name: topic for topic in ALL_TOPICS})


def topic_by_name(name: str) -> Topic:
    """The topic called `name`; KeyError if the contracts define none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no contract topic named {name!r}") from None


def dead_letter_topic(service: str) -> Topic:
    """Where `service` sends what it cannot apply."""
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    return _BY_NAME[f"deadletter.{service}"]


# -- Who publishes and who consumes what (architecture.md's diagram) -------------------------------

SENDS: Final[Mapping[str, tuple[Topic, ...]]] = MappingProxyType(
    {
        "identity": (PERSONS, FACTS, UNITS, *FEEDBACK.values()),
        "matching": (STATUSES,),
        "survey": (COLLECTIONS,),
        "reporting": (),
        "gateway": (),  # submits collections to survey over HTTP (architecture.md)
    }
)
RECEIVES: Final[Mapping[str, tuple[Topic, ...]]] = MappingProxyType(
    {
        "identity": (*CDC_TOPICS, COLLECTIONS, *FEEDBACK_REPLIES.values()),
        "matching": (PERSONS, FACTS, COLLECTIONS),
        "survey": (PERSONS, STATUSES),
        # registry.units names the employers of the labour inspection list (reports.Employers).
        "reporting": (PERSONS, STATUSES, UNITS),
        # The DCI subscriptions' notifications to partner departments (api.md "Partner
        # departments"): a person's verdict changed.
        "gateway": (STATUSES,),
    }
)

# -- Who may write and read on the bus (Kafka ACLs; deploy/README.md "Kafka authentication and
# ACLs"). Each of these logs in as its own Kafka user; deploy/generate.py renders them as Strimzi
# KafkaUsers. A topic's writers are its owners (architecture.md): anyone else's write is refused.

CONNECT: Final = "connect"
"""Debezium on Kafka Connect: the only writer of the change feeds."""


@dataclass(frozen=True, slots=True)
class KafkaAccess:
    writes: tuple[Topic, ...]
    reads: tuple[Topic, ...]
    group_prefix: str | None  # the consumer groups it may use: ids beginning with this


def _service_access(service: str) -> KafkaAccess:
    # A service's consumer groups are named after it (`identity`, `identity.collections`), and
    # what it cannot apply goes to its own dead-letter topic.
    return KafkaAccess(
        writes=(*SENDS[service], dead_letter_topic(service)),
        reads=RECEIVES[service],
        group_prefix=service,
    )


def feedback_principal(system: str) -> str:
    """The Kafka user of a business system's feedback client (a Kubernetes name: no `_`)."""
    return f"feedback-{system.replace('_', '-')}"


KAFKA_ACCESS: Final[Mapping[str, KafkaAccess]] = MappingProxyType(
    {
        CONNECT: KafkaAccess(writes=CDC_TOPICS, reads=(), group_prefix=None),
        # Each business system reads the requests for it and answers on its own replies topic,
        # in consumer groups named after its user; never another system's (41号 §4: each keeps
        # its own data, the registry shares only what concerns it).
        **{
            feedback_principal(system): KafkaAccess(
                writes=(FEEDBACK_REPLIES[system],),
                reads=(FEEDBACK[system],),
                group_prefix=feedback_principal(system),
            )
            for system in FEEDBACK_SYSTEMS
        },
        # A service with no topic talks no Kafka and has no login.
        **{
            service: _service_access(service)
            for service in SERVICES
            if SENDS[service] or RECEIVES[service]
        },
    }
)


def writers(topic: Topic) -> tuple[str, ...]:
    """Who may write `topic`."""
    return tuple(who for who, access in KAFKA_ACCESS.items() if topic in access.writes)
