"""Identity's test fixtures: a migrated identity database per test, the dev keys, and change
events built the way Debezium writes them (JSON converter, pgoutput: dates as days since
1970-01-01, a key object of the primary key columns)."""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

import canbao_identity
from canbao_contracts.debezium import parse_change_event
from canbao_contracts.events.base import Event
from canbao_identity.adapters import adapter_for
from canbao_identity.app import protector_from
from canbao_identity.builder import GoldenRecordBuilder
from canbao_identity.golden_records import GoldenRecords, golden_records_work
from canbao_identity.handlers import staged_change
from canbao_identity.protection import Protector
from canbao_identity.settings import IdentitySettings
from canbao_identity.staging import add_staged
from canbao_identity.tables import identities
from canbao_identity.units import apply_unit_change, is_unit_feed
from canbao_platform.db import Database
from canbao_platform.messaging import UnitOfWork
from canbao_platform.messaging.messages import event_source
from tests.conftest import MigratedDatabase

MIGRATIONS = Path(canbao_identity.__file__).parent / "migrations"
SETTINGS = IdentitySettings(CANBAO_ENV="test")
PROTECTOR = protector_from(SETTINGS)
# Primary key columns per table (sources.md); bigserial tables get an id from the test.
KEYS: dict[str, tuple[str, ...]] = {
    "si_core.ab01": ("aab001",),
    "si_core.ac01": ("aac001",),
    "si_core.ac02": ("aac001", "aae140", "aab301"),
    "si_core.ac60": ("id",),
    "medical.insured": ("psn_no", "insutype"),
    "hukou.person": ("sfzh",),
    "hukou.resident_permit": ("jzzh",),
    "civil.cremation": ("id",),
    "civil.dibao": ("id",),
    "education.student": ("xh",),
    "justice.inmate": ("id",),
    "employment.job_registration": ("id",),
    "card.card_holder": ("aaz500",),
    "national.cross_region": ("id",),
}
_EPOCH = date(1970, 1, 1)
_lsns = itertools.count(1000, 8)


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes
    value: bytes | None


def encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return (value - _EPOCH).days
    return value


def change(
    table: str,
    row: dict[str, Any],
    *,
    op: str = "c",
    lsn: int | None = None,
    embed_schema: bool = False,
    ts_ms: int = 1_763_800_000_000,
) -> Message:
    """A Debezium change event of `table` ("hukou.person") for `row`."""
    schema, name = table.split(".")
    row = {k: encode(v) for k, v in row.items()}
    key = {column: row[column] for column in KEYS[table]}
    envelope = {
        "before": row if op == "d" else None,
        "after": None if op == "d" else row,
        "source": {
            "lsn": lsn if lsn is not None else next(_lsns),
            "txId": 1,
            "ts_ms": ts_ms,
            "schema": schema,
            "table": name,
        },
        "op": op,
        "ts_ms": 1_763_800_000_500,
    }
    if embed_schema:
        envelope, key = {"schema": {}, "payload": envelope}, {"schema": {}, "payload": key}  # type: ignore[assignment]
    return Message(f"cdc.{table}", json.dumps(key).encode(), json.dumps(envelope).encode())


def tombstone(message: Message) -> Message:
    return Message(message.topic, message.key, None)


@dataclass
class Harness:
    """Identity's registry on a real database, fed change events directly (no broker): each
    `apply` call is one transaction, as one consumed batch is."""

    db: Database
    published: list[Event] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    protector: Protector = PROTECTOR

    async def apply(self, messages: Iterable[Message], *, drain: bool = True) -> None:
        """The messages staged in one transaction (as one consumed batch), then (unless told
        not to) resolved and rebuilt until nothing is left, as the builder component does."""
        async with self.db.sessions() as session, session.begin():
            uow = UnitOfWork(session, source=event_source("identity"))
            for m in messages:
                event = parse_change_event(m.key, m.value, topic=m.topic)
                if is_unit_feed(m.topic):  # as the handler does: published, not resolved
                    await apply_unit_change(uow, event)
                    continue
                adapter = adapter_for(m.topic)
                assert adapter is not None
                if (staged := staged_change(self.protector, adapter, event)) is not None:
                    add_staged(uow, staged)
        if drain:
            await self.drain()

    def work(self, *, linking: bool = False) -> AbstractAsyncContextManager[GoldenRecords]:
        """One unit of work on the golden records as the builder and the routes run one
        (golden_records.golden_records_work), what it publishes collected in `published`."""
        return golden_records_work(
            self.db,
            self.protector,
            service="identity",
            linking=linking,
            publish=self.published.append,
            counts=self.counts,
        )

    async def drain(self) -> None:
        """As the builder's pass: every staged change resolved, then every pending person
        rebuilt (a unit of work per batch), until none of either is left."""
        while True:
            resolved = rebuilt = 0
            while n := await self._step(lambda golden_records: golden_records.resolve_pending()):
                resolved += n
            while n := await self._step(lambda golden_records: golden_records.rebuild_pending()):
                rebuilt += n
            if not resolved and not rebuilt:
                return

    async def _step(self, work: Callable[[GoldenRecords], Awaitable[int]]) -> int:
        async with self.work() as golden_records:
            return await work(golden_records)

    async def person_of(self, number: str, document_type: str = "01") -> UUID | None:
        async with self.db.sessions() as session:
            return await session.scalar(
                sa.select(identities.c.person_id).where(
                    identities.c.document_type == document_type,
                    identities.c.number_index == self.protector.number_index(document_type, number),
                )
            )

    async def golden(self, person_id: UUID) -> dict[str, Any]:
        from canbao_identity.routes import _person

        return (await _person(self.db, self.protector, person_id)).model_dump(mode="json")


@asynccontextmanager
async def fresh_harness(migrated_database: MigratedDatabase) -> AsyncIterator[Harness]:
    """A harness on a new migrated database (for property tests: one per example)."""
    url = await migrated_database(MIGRATIONS)
    # Up to ten connections: property tests run up to four builder replicas on this one pool
    # (each has a pool of its own in production) beside the harness staging changes on it.
    db = Database(url, pool_size=5)
    try:
        yield Harness(db)
    finally:
        await db.dispose()


@pytest.fixture
async def identity_db(migrated_database: MigratedDatabase) -> AsyncIterator[Database]:
    url = await migrated_database(MIGRATIONS)
    db = Database(url, pool_size=4)
    yield db
    await db.dispose()


@pytest.fixture
def harness(identity_db: Database) -> Harness:
    return Harness(identity_db)


def transient_failures(replicas: Sequence[GoldenRecordBuilder]) -> int:
    """The replicas' failures, all of them deadlocks (retried: the work stays staged/pending)."""
    reasons = sum((r.failure_reasons for r in replicas), start=collections.Counter[str]())
    assert all("40P01" in reason for reason in reasons), reasons
    return sum(reasons.values())
