"""Identity's tables as the handlers use them: load and save source records, find owners of
numbers and demographic keys, persons. Never commits (the unit of work does)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from canbao_identity.golden import LinkedRecord
from canbao_identity.protection import Protector
from canbao_identity.records import FactDraft
from canbao_identity.resolution import LinkKind
from canbao_identity.tables import (
    identities,
    pending_persons,
    persons,
    review_queue,
    source_records,
)  # fmt: skip

LINKED = (LinkKind.EXACT.value, LinkKind.CANDIDATE.value, LinkKind.REFERENCE.value)


def record_context(source_table: str, record_key: str) -> str:
    return f"source_records|{source_table}|{record_key}"


def person_context(person_id: UUID) -> str:
    return f"persons|{person_id}"


@dataclass
class Store:
    session: AsyncSession
    protector: Protector

    async def _connection(self) -> AsyncConnection:
        # Core statements on the unit of work's own connection (same transaction).
        return await self.session.connection()

    async def record(self, source_table: str, record_key: str) -> Any:
        query = (
            sa.select(source_records)
            .where(
                source_records.c.source_table == source_table,
                source_records.c.record_key == record_key,
            )
            .with_for_update()
        )
        return (await (await self._connection()).execute(query)).first()

    async def save_record(self, values: dict[str, Any]) -> None:
        statement = insert(source_records).values(**values, updated_at=sa.func.now())
        keys = ("source_table", "record_key")
        await (await self._connection()).execute(statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: statement.excluded[k] for k in (*values, "updated_at") if k not in keys},
        ))  # fmt: skip

    async def claim_identity(self, document_type: str, number_index: str, person_id: UUID) -> UUID:
        """The owner of the number: `person_id` if it had none (safe against a concurrent
        consumer: the loser of the insert reads the winner)."""
        inserted = await (await self._connection()).scalar(
            insert(identities).values(document_type=document_type, number_index=number_index,
                                      person_id=person_id)
            .on_conflict_do_nothing().returning(identities.c.person_id)
        )  # fmt: skip
        return inserted or await self.number_owner(document_type, number_index)  # type: ignore[return-value]

    async def number_owner(self, document_type: str, number_index: str) -> UUID | None:
        return await (await self._connection()).scalar(sa.select(identities.c.person_id).where(
            identities.c.document_type == document_type,
            identities.c.number_index == number_index))  # fmt: skip

    async def demographic_matches(self, demographic_index: str | None) -> tuple[UUID, ...]:
        if demographic_index is None:
            return ()
        rows = await (await self._connection()).scalars(sa.select(persons.c.person_id).where(
            persons.c.demographic_index == demographic_index).limit(2))  # fmt: skip
        return tuple(rows)

    async def reference_owner(self, link_ref: str) -> UUID | None:
        source_table, record_key = link_ref.split("|", 1)
        return await (await self._connection()).scalar(sa.select(source_records.c.person_id).where(
            source_records.c.source_table == source_table,
            source_records.c.record_key == record_key,
            source_records.c.link_kind.in_(LINKED), source_records.c.deleted.is_(False)))  # fmt: skip

    async def relink_dependents(self, link_ref: str, person_id: UUID | None) -> set[UUID]:
        """Rows naming `link_ref` follow it to `person_id`; the persons they leave, returned."""
        rows = (await (await self._connection()).execute(
            sa.update(source_records)
            .where(source_records.c.link_ref == link_ref, source_records.c.deleted.is_(False),
                   source_records.c.person_id.is_distinct_from(person_id))
            .values(person_id=person_id,
                    link_kind=(LinkKind.REFERENCE if person_id else LinkKind.WAITING).value)
            .returning(source_records.c.person_id)
        )).all()  # fmt: skip
        return {row.person_id for row in rows if row.person_id is not None}

    async def ensure_person(self, person_id: UUID) -> None:
        await (await self._connection()).execute(
            insert(persons).values(person_id=person_id).on_conflict_do_nothing()
        )

    async def person(self, person_id: UUID) -> Any:
        return (
            await (await self._connection()).execute(
                sa.select(persons).where(persons.c.person_id == person_id).with_for_update()
            )
        ).first()

    async def persons(self, person_ids: list[UUID]) -> dict[UUID, Any]:
        """The persons' rows, locked until the unit of work ends (two builders never rebuild
        one person at once)."""
        rows = (await (await self._connection()).execute(
            sa.select(persons).where(persons.c.person_id.in_(person_ids))
            .order_by(persons.c.person_id).with_for_update())).all()  # fmt: skip
        return {row.person_id: row for row in rows}

    async def linked_records(self, person_ids: list[UUID]) -> dict[UUID, list[LinkedRecord]]:
        """Each person's current linked records, claims decrypted."""
        rows = (await (await self._connection()).execute(sa.select(source_records).where(
            source_records.c.person_id.in_(person_ids), source_records.c.deleted.is_(False),
            source_records.c.link_kind.in_(LINKED)))).all()  # fmt: skip
        found: dict[UUID, list[LinkedRecord]] = {}
        for row in rows:
            found.setdefault(row.person_id, []).append(self._linked(row))
        return found

    async def mark_pending(self, person_ids: Iterable[UUID]) -> None:
        values = [{"person_id": person_id} for person_id in sorted(set(person_ids), key=str)]
        if values:
            await (await self._connection()).execute(
                insert(pending_persons).values(values).on_conflict_do_nothing()
            )

    async def take_pending(self, limit: int) -> list[UUID]:
        """Up to `limit` pending persons, removed from the list (in this transaction: a rollback
        puts them back); rows another builder holds are skipped."""
        held = (sa.select(pending_persons.c.person_id).order_by(pending_persons.c.marked_at)
                .limit(limit).with_for_update(skip_locked=True).scalar_subquery())  # fmt: skip
        rows = await (await self._connection()).scalars(
            sa.delete(pending_persons).where(pending_persons.c.person_id.in_(held))
            .returning(pending_persons.c.person_id))  # fmt: skip
        return list(rows)

    async def pending_count(self) -> int:
        return (
            await (await self._connection()).scalar(
                sa.select(sa.func.count()).select_from(pending_persons)
            )
            or 0
        )

    def _linked(self, row: Any) -> LinkedRecord:
        claims = {}
        if row.claims_ciphertext is not None:
            claims = self.protector.decrypt(row.claims_ciphertext, key_id=row.key_id,
                                            context=record_context(row.source_table, row.record_key))  # fmt: skip
        return LinkedRecord(
            source_table=row.source_table, record_key=row.record_key,
            link_kind=LinkKind(row.link_kind), position=row.position,
            observed_at=row.observed_at, claims=claims,
            facts=tuple(FactDraft(f["kind"], f["fields"]) for f in row.facts),
            provenance=row.provenance or {},
        )  # fmt: skip

    async def save_persons(self, values: list[dict[str, Any]]) -> None:
        if not values:
            return
        columns = [k for k in values[0] if k != "person_id"]
        statement = (sa.update(persons)
                     .where(persons.c.person_id == sa.bindparam("b_person_id"))
                     .values({**{c: sa.bindparam(f"b_{c}") for c in columns}, "updated_at": sa.func.now()}))  # fmt: skip
        await (await self._connection()).execute(
            statement, [{f"b_{k}": v for k, v in row.items()} for row in values]
        )

    async def link_candidate(self, source_table: str, record_key: str, person_id: UUID) -> None:
        await (await self._connection()).execute(
            sa.update(source_records)
            .where(source_records.c.source_table == source_table,
                   source_records.c.record_key == record_key,
                   source_records.c.deleted.is_(False))
            .values(person_id=person_id, link_kind=LinkKind.CANDIDATE.value))  # fmt: skip

    async def open_review(self, source_table: str, record_key: str, reason: str,
                          demographic_index: str | None) -> None:  # fmt: skip
        statement = insert(review_queue).values(
            source_table=source_table, record_key=record_key, reason=reason,
            demographic_index=demographic_index, state="open")  # fmt: skip
        await (await self._connection()).execute(statement.on_conflict_do_update(
            index_elements=["source_table", "record_key"],
            set_={"reason": reason, "demographic_index": demographic_index, "state": "open",
                  "resolution": None, "person_id": None, "resolved_by": None,
                  "resolved_at": None},
            where=review_queue.c.state == "open",  # a clerk's decision stands
        ))  # fmt: skip

    async def review_entry(self, source_table: str, record_key: str) -> Any:
        return (await (await self._connection()).execute(sa.select(review_queue).where(
            review_queue.c.source_table == source_table,
            review_queue.c.record_key == record_key))).first()  # fmt: skip

    async def close_review(self, source_table: str, record_key: str, resolution: str,
                           person_id: UUID | None, resolved_by: str) -> None:  # fmt: skip
        await (await self._connection()).execute(sa.update(review_queue).where(
            review_queue.c.source_table == source_table, review_queue.c.record_key == record_key,
            review_queue.c.state == "open",
        ).values(state="resolved", resolution=resolution, person_id=person_id,
                 resolved_by=resolved_by, resolved_at=sa.func.now()))  # fmt: skip

    async def open_reviews_for(self, demographic_indexes: Iterable[str]) -> list[Any]:
        return list((await (await self._connection()).execute(sa.select(review_queue).where(
            review_queue.c.demographic_index.in_(sorted(demographic_indexes)),
            review_queue.c.state == "open"))).all())  # fmt: skip
