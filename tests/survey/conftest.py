"""Survey's fixtures: a migrated survey database per test, the real application on it (through
ASGI, lifespan included: producer and outbox relay running), a broker of its own holding the
contract topic registry.collections, and a reader of what arrives there."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from canbao_contracts.envelope import decode
from canbao_contracts.events import CollectionApproved
from canbao_contracts.topics import COLLECTIONS, PERSONS, STATUSES
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.service import create_app
from canbao_survey.app import SERVICE, components
from canbao_survey.settings import SurveySettings
from tests.conftest import MigratedDatabase, ServiceAuth, caller_headers
from tests.platform.conftest import FAST

PROBLEM_JSON = "application/problem+json"
CLERK = "clerk-520102-07"  # the counter clerk the tests' service tokens name
REVIEWER = "reviewer-520102-01"  # a second member of the agency's staff: 复核人 (AAE014)
PERSON = UUID("0b9a4c3e-6a55-4f0e-9a43-1f4c5d1e2a01")
NUMBER = "520102198001010013"  # Guiyang, Nanming; born 1980-01-01; male
NANMING = "520102"
# What a clerk collects for a known person: the missing phone and a corrected address.
COLLECTED = {"phone": "13812345678", "residence_address": "贵州省贵阳市南明区花果园街道1号"}
NEW_PERSON = {
    "name": "王伟",
    "gender": "1",
    "id_number": NUMBER,
    "birth_date": "19800101",
    "household_place": "贵州省贵阳市南明区",
    "residence_address": "贵州省贵阳市南明区花果园街道1号",
    "phone": "0851-85551234",
}


@pytest.fixture
def collections_kafka() -> Iterator[MockKafkaCluster]:
    """A broker of its own with the contract's topics survey reads and writes: registry.persons
    and registry.statuses in, registry.collections out (the session's broker holds only the
    topics tests make, and other packages may create these there). One per test: on a broker
    shared with the test before, the survey consumer's group would let the new member in only
    session_timeout - 1 s after the last one left (tests/platform FAST); a new broker is
    in-process and starts in milliseconds."""
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics([COLLECTIONS, PERSONS, STATUSES])
        yield cluster


@pytest.fixture
async def survey_url(migrated_database: MigratedDatabase) -> str:
    return await migrated_database(SERVICE.migrations)


@pytest.fixture
async def survey_db(survey_url: str) -> AsyncIterator[Database]:
    """The test's survey database, for reading rows directly."""
    database = Database(survey_url, pool_size=2)
    yield database
    await database.dispose()


def survey_settings(url: str, kafka: MockKafkaCluster, **values: Any) -> SurveySettings:
    return SurveySettings(
        database_url=url,
        CANBAO_ENV="test",
        KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        **values,
    )


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        auth = ServiceAuth("survey", username=CLERK)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://survey", auth=auth
        ) as client:
            yield client


# Survey's consumer as the platform's tests run one: the test broker lets the next test's member
# into the group only session_timeout - 1 s after the last one left (tests/platform FAST).
TEST_SERVICE = dataclasses.replace(SERVICE, components=functools.partial(components, config=FAST))


@pytest.fixture
async def survey_app(survey_url: str, collections_kafka: MockKafkaCluster) -> FastAPI:
    return create_app(TEST_SERVICE, survey_settings(survey_url, collections_kafka))


@pytest.fixture
async def survey(survey_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(survey_app) as client:
        yield client


@dataclass
class Published:
    """registry.collections as a consumer reads it, from the beginning."""

    reader: AIOKafkaConsumer
    seen: list[CollectionApproved] = field(default_factory=list)

    async def until(
        self, done: Callable[[list[CollectionApproved]], bool], timeout_s: float = 30.0
    ) -> list[CollectionApproved]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done(self.seen):
            assert asyncio.get_running_loop().time() < deadline, "events did not arrive in time"
            await self.read(timeout_ms=200)
        return self.seen

    async def read(self, timeout_ms: int) -> None:
        batches = await self.reader.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for record in records:
                event = decode(list(record.headers), record.value)[1]
                assert isinstance(event, CollectionApproved)
                self.seen.append(event)

    def of(self, collection_id: str | UUID) -> list[CollectionApproved]:
        return [e for e in self.seen if str(e.collection_id) == str(collection_id)]

    def of_person(self, person_id: UUID) -> list[CollectionApproved]:
        return [e for e in self.seen if e.person_id == person_id]


@pytest.fixture
async def published(collections_kafka: MockKafkaCluster) -> AsyncIterator[Published]:
    reader = AIOKafkaConsumer(
        COLLECTIONS.name,
        bootstrap_servers=collections_kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await reader.start()
    yield Published(reader)
    await reader.stop()


def counter_collection(
    items: dict[str, str] | None = None, *, person_id: UUID | None = PERSON, **fields: Any
) -> dict[str, Any]:
    """The body of a submission; the handler is the service token's subject (CLERK by default,
    `caller_headers("survey", username=…)` for another). A registered person is placed, as the
    gateway places them, in Nanming (`person_region`)."""
    placed = {"person_region": NANMING} if person_id else {}
    return {
        "person_id": str(person_id) if person_id else None,
        "items": COLLECTED if items is None else items,
        **placed,
        **fields,
    }


def reviewer(username: str = REVIEWER, scope: str = "52") -> dict[str, str]:
    """The Authorization header of a reviewer's (复核人) internal call."""
    return caller_headers("survey", username=username, role="reviewer", scope=scope)


async def passed(
    survey: httpx.AsyncClient, collection_id: str, *, by: str = REVIEWER
) -> dict[str, Any]:
    """The collection passed by a reviewer (复核): it is then published."""
    response = await survey.post(
        f"/internal/collections/{collection_id}/review",
        json={"decision": "pass"},
        headers=reviewer(by),
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert "Traceback" not in response.text
    return body
