"""The audit log (domain.md §2.5; api.md): who read or changed whose personal data, where, why,
when, and with what outcome.

Every endpoint that reads or changes personal data calls `AuditTrail.record` in the same request,
before it answers: the row is committed first, so data is never shown without its audit row (if
the log cannot be written the request fails). The table is append-only in the database itself
(migration gateway_0001). A person is named by identity's `person_id` and by a keyed blind hash of
the ID number, never by the clear number, so the log is not itself a list of numbers."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import Request
from pydantic import BaseModel

from canbao_contracts.id_numbers import normalise
from canbao_gateway.clock import Now
from canbao_gateway.staff import Actor
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database


class Purpose(StrEnum):
    """Why personal data was read or changed (the "why" of api.md's audit log): one per kind of
    business, named by the endpoint that serves it, not typed by the user."""

    COUNTER_SERVICE = "counter_service"  # serving a person at a counter (popup, collections)
    REGISTRATION_RECORD = "registration_record"  # the full record (GET /persons/{id_number})
    CHANGE_HISTORY = "change_history"  # a person's change history (…/{id_number}/history)
    SURVEY = "survey"  # household survey tasks and forms
    REVIEW = "review"  # first review (初审), approval (审定), 复核 of counter collections
    CHANGE_REGISTRATION = "change_registration"  # 变更登记 at the grass-roots platform
    SAMPLING_CHECK = "sampling_check"  # the city's sampling checks (抽查复核)
    ANALYSIS = "analysis"  # the people behind a report's number
    SELF_SERVICE = "self_service"  # a citizen's own record on a kiosk or the app
    CERTIFICATE_CHECK = "certificate_check"  # anyone checking a proof of insurance (no login)
    PARTNER_BATCH = "partner_batch"  # a partner department's batch of its own data
    PARTNER_COMPARISON = "partner_comparison"  # a partner department asking people's statuses
    PARTNER_SEARCH = "partner_search"  # a partner's DCI registry search
    PARTNER_SUBSCRIPTION = "partner_subscription"  # a DCI notification to a subscriber
    AUDIT_REVIEW = "audit_review"  # an auditor reading this log


class Outcome(StrEnum):
    OK = "ok"  # the data was shown or the change accepted
    NOT_FOUND = "not_found"  # asked for a person the registry does not know
    OUT_OF_SCOPE = "out_of_scope"  # refused: the person lives outside the staff's region
    REJECTED = "rejected"  # a change refused as invalid
    REFUSED = "refused"  # a self-service session refused: wrong name, bad token, kiosk disabled


def id_number_hash(id_number: str, *, key: bytes) -> str:
    """HMAC-SHA256 of the normalised number: the same for every form of it (15/18 digits, x/X),
    and without the key no one can test a guessed number against the log."""
    return hmac.new(key, normalise(id_number).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditTrail:
    """The audit log as one request sees it: who (the staff member; a kiosk or a citizen's
    session, staff.Actor), where (the endpoint), from which client, and the key of the ID-number
    hash."""

    database: Database
    staff: Actor
    endpoint: str  # method and route template: never the concrete path, which may hold a number
    client: str | None
    key: bytes
    now: Now

    async def record(
        self,
        *,
        purpose: Purpose,
        outcome: Outcome,
        person_id: UUID | None = None,
        id_number: str | None = None,
        person_region: str | None = None,
    ) -> None:
        """Write and commit one row, before the response: one INSERT in its own implicit
        transaction (autocommit), committed when PostgreSQL answers, as durably as within
        BEGIN … COMMIT and two round trips sooner."""
        row: dict[str, Any] = {
            "at": self.now(),
            "staff": self.staff.username,
            "role": self.staff.role.value,
            "staff_scope": self.staff.scope,
            "person_id": person_id,
            "id_number_hash": id_number_hash(id_number, key=self.key) if id_number else None,
            "person_region": person_region,
            "endpoint": self.endpoint,
            "purpose": purpose.value,
            "outcome": outcome.value,
            "client": self.client,
        }
        async with self.database.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(sa.insert(audit_log), row)

    async def record_many(self, *, purpose: Purpose, people: list[AuditedPerson]) -> None:
        """One row per person in one INSERT (a partner's comparison of up to 10,000 numbers),
        committed before the response like `record`'s."""
        if not people:
            return
        at = self.now()
        rows = [
            {
                "at": at,
                "staff": self.staff.username,
                "role": self.staff.role.value,
                "staff_scope": self.staff.scope,
                "person_id": person.person_id,
                "id_number_hash": id_number_hash(person.id_number, key=self.key)
                if person.id_number
                else None,
                "person_region": person.region,
                "endpoint": self.endpoint,
                "purpose": purpose.value,
                "outcome": person.outcome.value,
                "client": self.client,
            }
            for person in people
        ]
        async with self.database.engine.begin() as connection:
            await connection.execute(sa.insert(audit_log), rows)


@dataclass(frozen=True, slots=True)
class AuditedPerson:
    id_number: str | None  # None: a person known without a citizen number
    person_id: UUID | None
    outcome: Outcome
    region: str | None = None


def endpoint_of(request: Request) -> str:
    """`GET /api/v1/counter/popup/{id_number}`: the route's template, not the path asked for."""
    route = request.scope.get("route")
    template = getattr(route, "path", None) or "(unrouted)"
    return f"{request.method} {template}"


class AuditEntry(BaseModel):
    """One row of the log as auditors read it."""

    id: int
    at: datetime
    staff: str
    role: str
    staff_scope: str
    person_id: UUID | None
    id_number_hash: str | None
    person_region: str | None
    endpoint: str
    purpose: str
    outcome: str
    client: str | None


@dataclass(frozen=True)
class AuditFilter:
    scope: str  # the auditor's: rows about people of this region, or by staff scoped inside it
    person_id: UUID | None = None
    id_number: str | None = None
    staff: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


async def search(
    database: Database, query: AuditFilter, *, key: bytes, before: int | None, limit: int
) -> list[AuditEntry]:
    """Matching rows, newest first, at most `limit`, with ids below `before` (keyset paging)."""
    c = audit_log.c
    region = sa.func.coalesce(c.person_region, c.staff_scope)
    conditions: list[sa.ColumnElement[bool]] = [sa.func.starts_with(region, query.scope)]
    if query.person_id is not None:
        conditions.append(c.person_id == query.person_id)
    if query.id_number is not None:
        conditions.append(c.id_number_hash == id_number_hash(query.id_number, key=key))
    if query.staff is not None:
        conditions.append(c.staff == query.staff)
    if query.since is not None:
        conditions.append(c.at >= query.since)
    if query.until is not None:
        conditions.append(c.at < query.until)
    if before is not None:
        conditions.append(c.id < before)
    statement = sa.select(audit_log).where(*conditions).order_by(c.id.desc()).limit(limit)
    async with database.engine.connect() as connection:
        rows = (await connection.execute(statement)).mappings().all()
    return [AuditEntry.model_validate(dict(row)) for row in rows]
