"""The identity service end to end on the real broker: Debezium-shaped change events produced on
the contract's cdc.* topics go through ConsumerRunner (group "identity"), the builder and the
outbox relay, and come out as contract events on registry.persons and registry.facts; an
approved collection on registry.collections closes the gap it fills."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from canbao_contracts.codes import RegistrationItem
from canbao_contracts.envelope import KafkaRecord, decode, encode
from canbao_contracts.events import CollectionApproved, FactsAsserted, PersonRegistered
from canbao_contracts.events.base import Event
from canbao_contracts.events.vocabulary import Channel
from canbao_contracts.topics import (
    CDC_TOPICS,
    COLLECTIONS,
    FACTS,
    PERSONS,
    UNITS,
    Topic,
    dead_letter_topic,
)
from canbao_identity.app import CDC_GROUP, components, create
from canbao_identity.settings import IdentitySettings
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import DLQ_REASON, Producer
from canbao_platform.service import Component, Resources
from tests.conftest import ServiceAuth
from tests.identity.conftest import Message, change
from tests.platform.conftest import FAST as PLATFORM_FAST

FAST = dataclasses.replace(PLATFORM_FAST, max_batch=200)


@pytest.fixture
def kafka() -> Iterator[MockKafkaCluster]:
    """A broker per test with the contract's topics, instead of the session's: there, the
    groups these tests join ("identity", …) let a test's member in only session_timeout - 1 s
    after the previous test's left (2 s with FAST; with the app's production 10 s session the
    next JoinGroup outwaited its 40 s request timeout). The test broker is in-process and
    starts in milliseconds."""
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics(
            [*CDC_TOPICS, PERSONS, FACTS, COLLECTIONS, UNITS, dead_letter_topic("identity")]
        )
        yield cluster


async def reader_from_now(kafka: MockKafkaCluster, *topics: Topic) -> AIOKafkaConsumer:
    """A reader of `topics` that sees only what is published from now on: the broker is the
    session's, and earlier tests (or an earlier parameter of this one) published there too."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await reader.start()
    partitions = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
    reader.assign(partitions)
    for partition, offset in (await reader.end_offsets(partitions)).items():
        reader.seek(partition, offset)
    return reader


@dataclass
class Running:
    producer: Producer
    kafka: MockKafkaCluster
    components: list[Component]
    reader: AIOKafkaConsumer  # registry.persons and registry.facts, from the test's start
    seen: list[Event] = field(default_factory=list)

    async def produce(self, messages: list[Message]) -> None:
        await self.producer.send_many(KafkaRecord(m.topic, m.key, m.value, []) for m in messages)

    async def events_until(self, done: Any, timeout_s: float = 60.0) -> list[Event]:
        """Read registry.persons and registry.facts until `done(seen)` holds."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done(self.seen):
            assert asyncio.get_running_loop().time() < deadline, "events did not arrive in time"
            batches = await self.reader.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    self.seen.append(decode(list(record.headers), record.value)[1])
        return self.seen


TOGETHER, APART = "consume,build", "apart"  # one process; or as a province deploys it


@pytest.fixture
async def running(
    request: pytest.FixtureRequest, kafka: MockKafkaCluster, identity_db: Database
) -> AsyncIterator[Running]:
    """The service's components on the broker; `APART` (indirect parameter): two sets, as two
    processes with IDENTITY_ROLES=consume and IDENTITY_ROLES=build run them."""
    apart = getattr(request, "param", TOGETHER) == APART
    deployments = ["consume", "build"] if apart else [TOGETHER]
    parts: list[Component] = []
    for roles in deployments:
        settings = IdentitySettings(
            CANBAO_ENV="test",
            database_url=identity_db.url,
            kafka_bootstrap_servers=kafka.bootstrap_servers,
            roles=roles,
        )
        parts += components(
            Resources(settings=settings, database=identity_db), config=FAST, builder_idle_s=0.05
        )
    reader = await reader_from_now(kafka, PERSONS, FACTS)
    async with Producer(kafka.bootstrap_servers) as producer:
        service = Running(producer, kafka, list(parts), reader)
        started: list[Component] = []
        try:
            for part in parts:
                await part.start()
                started.append(part)
            yield service
        finally:
            await reader.stop()
            for part in reversed(started):
                await part.stop()


NUMBER = "110101198001010010"
OTHER_NUMBER = "11010119900202008X"


def hukou_row(number: str, name: str, gender: str) -> dict[str, Any]:
    return {
        "sfzh": number,
        "xm": name,
        "xb": gender,
        "csrq": date(1990, 2, 2),
        "hjdz_xzqh": "110101",
        "hjdz": "北京市东城区2号",
        "ryzt": "0",
    }


LEGACY = "110101800101001"  # the same person's 15-digit number


def person_events(seen: list[Event], kind: type[Event]) -> list[Any]:
    return [e for e in seen if isinstance(e, kind)]


@pytest.mark.parametrize("running", [TOGETHER, APART], indirect=True)
async def test_change_events_through_the_broker_become_one_person_and_facts(
    running: Running,
) -> None:
    """The same, whether the consumers and the builder share a process or not."""
    names = [getattr(c, "name", None) for c in running.components]
    assert names.count(CDC_GROUP) == names.count("identity.builder") == 1
    assert CDC_GROUP == "identity"
    await running.produce(
        [
            change(
                "hukou.person",
                {
                    "sfzh": NUMBER,
                    "xm": "王伟",
                    "xb": "1",
                    "csrq": date(1980, 1, 1),
                    "hjdz_xzqh": "110101",
                    "hjdz": "北京市东城区东华门街道1号",
                    "ryzt": "0",
                },
            ),
            change(
                "si_core.ac01",
                {
                    "aac001": "P1",
                    "aac002": LEGACY,
                    "aac003": "王伟",
                    "aac004": "1",
                    "aac006": "19800101",
                    "aab301": "110101",
                    "aae006": "北京市东城区1号",
                },
                embed_schema=True,
            ),
            change(
                "si_core.ac02",
                {
                    "aac001": "P1",
                    "aae140": "110",
                    "aab301": "110101",
                    "aab001": "U1",
                    "aac008": "1",
                    "aac030": date(2005, 1, 1),
                },
            ),
        ]
    )

    def arrived(seen: list[Event]) -> bool:
        facts = {f.kind for e in person_events(seen, FactsAsserted) for f in e.facts}
        return (
            bool(person_events(seen, PersonRegistered))
            and {"enrolment", "household_status"} <= facts
        )

    seen = await running.events_until(arrived)
    people = {e.person_id for e in seen}
    assert len(people) == 1, "the 15- and the 18-digit number are one person"
    registered = person_events(seen, PersonRegistered)[0]
    assert registered.masked_name != "王伟" and registered.masked_name.startswith("王")
    assert "王伟" not in str([e.model_dump() for e in seen]), "the clear name left identity"
    enrolment = next(
        f for e in person_events(seen, FactsAsserted) for f in e.facts if f.kind == "enrolment"
    )
    assert (enrolment.insurance.value, enrolment.scheme.value, enrolment.state) == (
        "pension",
        "11",
        "paying",
    )

    # No source has his phone: a gap, which an approved collection at the counter fills.
    assert "phone" in registered.missing
    person_id: UUID = registered.person_id
    now = datetime.now(UTC)
    collection = CollectionApproved(
        collection_id=uuid4(),
        person_id=person_id,
        channel=Channel.COUNTER,
        items={RegistrationItem.PHONE: "13900139000"},
        handler="clerk-1",
        handled_at=now,
        reviewer="reviewer-1",
        reviewed_at=now,
    )
    await running.producer.send(encode(collection, source="/canbao/test"))

    def phone_collected(seen: list[Event]) -> bool:
        return any(type(e).__name__ == "PersonUpdated" and "missing" in e.changed for e in seen)

    seen = await running.events_until(phone_collected)
    updated = [e for e in seen if type(e).__name__ == "PersonUpdated" and "missing" in e.changed][
        -1
    ]
    assert updated.person_id == person_id and "phone" not in updated.missing


async def test_a_malformed_change_event_goes_to_the_dead_letter_topic(
    running: Running, kafka: MockKafkaCluster
) -> None:
    """Nothing is silently dropped: an event that is not a change event is dead-lettered with
    the reason, and the events around it are applied."""
    good = change("hukou.person", hukou_row(OTHER_NUMBER, "李娜", "2"))
    reader = await reader_from_now(kafka, dead_letter_topic("identity"))
    await running.produce([Message("cdc.hukou.person", good.key, b"{not json"), good])
    try:
        deadline = asyncio.get_running_loop().time() + 60
        reasons: list[str] = []
        while not reasons:
            assert asyncio.get_running_loop().time() < deadline, "no dead letter"
            for records in (await reader.getmany(timeout_ms=200)).values():
                reasons += [dict(r.headers)[DLQ_REASON].decode() for r in records]
    finally:
        await reader.stop()
    assert "malformed change event" in reasons[0] and "李娜" not in reasons[0]
    await running.events_until(
        lambda seen: any(isinstance(e, PersonRegistered) and e.masked_name == "李*" for e in seen)
    )


async def test_changes_applied_beside_a_poison_message_are_all_kept(running: Running) -> None:
    """A poison message in the middle of a batch: the batch is replayed message by message in
    savepoints; what the messages before and after it staged survives the poison's rollback."""
    before = change("hukou.person", hukou_row(NUMBER, "王伟", "1"))
    after = change("hukou.person", hukou_row(OTHER_NUMBER, "李娜", "2"))
    await running.produce([before, Message("cdc.hukou.person", before.key, b"{not json"), after])
    await running.events_until(
        lambda seen: (
            {e.masked_name for e in seen if isinstance(e, PersonRegistered)} >= {"王*", "李*"}
        )
    )


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        # Whoever consumes also forgets idempotency records older than any retention.
        (
            None,
            [
                "producer",
                "identity",
                "identity.collections",
                "identity.feedback",
                "identity.outbox",
                "identity.builder",
                "processed-messages-pruner",
            ],
        ),
        # The process a province scales for the builder: no consumer (it would join group
        # "identity" and take partitions), no relay (its CPU is the builder's) and so no
        # producer: it talks to the database only.
        ("build", ["identity.builder"]),
        # More cores for a first load's rebuilds: the builder without its resolution.
        ("rebuild", ["identity.rebuilder"]),
    ],
    ids=["default", "IDENTITY_ROLES=build", "IDENTITY_ROLES=rebuild"],
)
async def test_the_app_runs_the_components_of_its_roles_and_becomes_ready(
    kafka: MockKafkaCluster,
    identity_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    roles: str | None,
    expected: list[str],
) -> None:
    """What `uvicorn --factory canbao_identity.app:create` runs: the lifespan starts the
    components of the process's roles (by default the producer, the two consumers, the builder
    and the relay), and /readyz says so."""
    if roles is not None:
        monkeypatch.setenv("IDENTITY_ROLES", roles)
    settings = IdentitySettings(
        CANBAO_ENV="test",
        database_url=identity_db.url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
    )
    app = create(settings)
    async with app.router.lifespan_context(app):
        assert [component.name for component in app.state.components] == expected
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://identity", auth=ServiceAuth("identity")
        ) as http:
            deadline = asyncio.get_running_loop().time() + 60
            while (ready := await http.get("/readyz")).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, ready.json()
                await asyncio.sleep(0.5)
            assert set(ready.json()["checks"]) == {"database", *expected}
            deadline = asyncio.get_running_loop().time() + 10
            builder_name = next(
                n for n in expected if n in ("identity.builder", "identity.rebuilder")
            )
            while (builder := (await http.get("/readyz")).json()["checks"][builder_name])[
                "staged"
            ] is None:  # measured once the builder's loop has run
                assert asyncio.get_running_loop().time() < deadline, builder
                await asyncio.sleep(0.2)
            assert (builder["staged"], builder["pending_persons"]) == (0, 0)


def test_an_unknown_role_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ROLES", "consume,bild")
    with pytest.raises(
        ValueError, match="IDENTITY_ROLES must name some of: consume, build, rebuild"
    ):
        IdentitySettings(CANBAO_ENV="test")


async def test_a_collection_whose_text_cannot_be_stored_goes_to_the_dead_letter_topic(
    running: Running, kafka: MockKafkaCluster
) -> None:
    """A collected name holding a NUL (refused by the contract's text rules, as PostgreSQL would
    refuse it in the golden record): dead-lettered with the field and the rule, never the
    value, and nothing of it staged."""
    now = datetime.now(UTC)
    collection = CollectionApproved(
        collection_id=uuid4(),
        person_id=None,
        channel=Channel.COUNTER,
        items={RegistrationItem.NAME: "王伟"},
        handler="clerk-1",
        handled_at=now,
        reviewer="reviewer-1",
        reviewed_at=now,
    )
    record = encode(collection, source="/canbao/test")
    body = json.loads(record.value)
    body["items"]["name"] = "\x00王伟"  # as a producer without the rules would send it
    reader = await reader_from_now(kafka, dead_letter_topic("identity"))
    await running.producer.send(dataclasses.replace(record, value=json.dumps(body).encode()))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        reasons: list[str] = []
        while not reasons:
            assert asyncio.get_running_loop().time() < deadline, "no dead letter"
            for records in (await reader.getmany(timeout_ms=200)).values():
                reasons += [dict(r.headers)[DLQ_REASON].decode() for r in records]
    finally:
        await reader.stop()
    assert "items.name" in reasons[0] and "control character (U+0000" in reasons[0]
    assert "王伟" not in reasons[0]
