"""The service layer. A change travels in three steps, each in one unit of work:

0. staging (staging.py, in the consumer's batch): the change event, identified (blind indexes)
   and encrypted, is added to `staged_changes` — no round trip of its own;
1. `GoldenRecords.resolve` (the builder): staged changes, hundreds per query, resolved to persons
   and saved as their records' current state; the persons they touch are marked *pending* —
   *settling* where only a snapshot's reads touched them, until the snapshot has gone quiet
   (tables.pending_persons). Builder replicas resolve at once, each in shares of the staged
   changes of its own (store.take_staged): records of one new number resolved by two at once
   found one person (store.claim_identities);
2. `GoldenRecords.rebuild` (the builder): each pending person's golden record, gaps and facts
   recomputed from all its current records, what changed since the last publication
   published through the outbox, and each changed value added to the person's change history
   (history.py).

Why not resolve and rebuild per message: a person arrives as ~6 rows across the source systems,
often in one burst (a snapshot, a month-end batch). Per message that was ~10 round trips and six
rebuilds per person (~180 events/s here); in bulk, each step costs a few queries per batch. Every
step writes its successor's input in its own transaction, so nothing consumed can be lost
between them, and redelivered or reordered changes are dropped by their source position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from canbao_contracts.codes import SourceSystem
from canbao_contracts.events import PersonsMerged
from canbao_contracts.events.base import Event
from canbao_identity import records as r
from canbao_identity.golden import GoldenDocument, LinkedRecord, golden_record
from canbao_identity.history import merge_changes, value_changes
from canbao_identity.protection import Protector
from canbao_identity.publication import current_facts, facts_events, person_event, public_state
from canbao_identity.resolution import (
    CLOSED_BY_BUILDER,
    CLOSED_BY_SOURCE,
    Identification,
    LinkKind,
    Resolution,
    ReviewOutcome,
    ReviewState,
    decide,
)
from canbao_identity.staging import StagedChange
from canbao_identity.store import MarkFloor, Settling, ShareFloors, Store
from canbao_identity.writeback import WriteBacks
from canbao_platform.db import Database
from canbao_platform.messaging import savepoint, unit_of_work

Publish = Callable[[Event], Any]
# A record that was never in review (or resolved by a clerk) has no queue entry to look at.
_MAY_HAVE_REVIEW = (LinkKind.REVIEW.value, LinkKind.CANDIDATE.value)


@dataclasses.dataclass
class GoldenRecords:
    store: Store
    protector: Protector
    publish: Publish
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    # Demographic keys whose queued records must be looked at again (`retry_reviews`) in a unit
    # of work of its own, once this one has committed: a record queued by one builder replica's
    # resolution while another replica's rebuild gave a person that very key cannot see each
    # other's uncommitted rows, so neither would link them. Checked after each commit, the later
    # of the two sees both.
    reviews_to_retry: set[str] = dataclasses.field(default_factory=set)

    async def resolve_pending(self, *, limit: int = 2000, floors: ShareFloors | None = None) -> int:
        """Resolve up to `limit` staged changes, oldest first (above `floors`: a builder's
        own, Store.take_staged); how many were taken."""
        changes = await self.store.take_staged(limit, floors)
        await self.resolve(changes)
        return len(changes)

    async def resolve(self, changes: Sequence[StagedChange]) -> None:
        """Resolve staged changes (in staging order) to persons, save them as the records'
        current state, and mark every person they touch as pending — settling where only a
        snapshot's reads touched them (tables.pending_persons). A change older than the one
        already applied to its record is dropped: that is what makes redelivered and reordered
        events harmless."""
        latest: dict[tuple[str, str], StagedChange] = {}
        for change in changes:
            if change.key not in latest or change.position > latest[change.key].position:
                latest[change.key] = change
        existing = await self.store.records(list(latest))
        fresh = [
            c for k, c in latest.items() if k not in existing or existing[k].position < c.position
        ]
        self._count("stale", len(changes) - len(fresh))
        if not fresh:
            return
        # By number first, then by reference: an ac02 follows its ac01 of the same batch.
        fresh.sort(key=lambda c: c.link_ref is not None)
        fresh_keys = {c.key for c in fresh}
        touched = {
            row.person_id
            for k, row in existing.items()
            if row.person_id is not None and k in fresh_keys
        }
        streamed = {c.key for c in fresh if not c.snapshot_read}
        due = {row.person_id for k, row in existing.items() if k in streamed} & touched
        owners = await self._owners(fresh)
        demographic = await self.store.demographic_matches_many(
            {c.demographic_index for c in fresh if c.demographic_index and not c.deleted}
        )
        references = await self.store.reference_owners(
            {c.link_ref for c in fresh if c.link_ref} - {_ref(c) for c in fresh}
        )
        rows: list[dict[str, Any]] = []
        opened: list[tuple[StagedChange, str]] = []
        linked_refs: dict[str, UUID | None] = {}  # ac01 rows of the batch → their person
        for change in fresh:
            before = existing.get(change.key)
            resolution = await self._resolution(
                change, before, owners, demographic, references, linked_refs
            )
            if change.source_table == "si_core.ac01":
                linked = not change.deleted and resolution.kind in (
                    LinkKind.EXACT,
                    LinkKind.CANDIDATE,
                )
                linked_refs[_ref(change)] = resolution.person_id if linked else None
            if resolution.person_id is not None:
                touched.add(resolution.person_id)
                if change.key in streamed:
                    due.add(resolution.person_id)
            rows.append(_row(change, resolution, before))
            if resolution.kind is LinkKind.REVIEW:
                opened.append((change, resolution.review_reason or ""))
            elif before is not None and before.link_kind in _MAY_HAVE_REVIEW:
                outcome = ReviewOutcome.WITHDRAWN if change.deleted else ReviewOutcome.SUPERSEDED
                await self.store.close_review(
                    *change.key, outcome, resolution.person_id, CLOSED_BY_SOURCE
                )
            self._count(resolution.kind.value)
        await self.store.save_records(rows)
        for change, reason in opened:
            await self.store.open_review(*change.key, reason, change.demographic_index)
            if change.demographic_index:
                self.reviews_to_retry.add(change.demographic_index)
        # The rows naming an ac01 follow it: due with a streamed change of it, else settling.
        streamed_refs = {_ref(c) for c in fresh if c.key in streamed}
        for refs, streaming in ((streamed_refs, True), (linked_refs.keys() - streamed_refs, False)):
            relinked = await self.store.relink_dependents_many(
                {r: linked_refs[r] for r in refs if r in linked_refs}
            )
            touched |= relinked
            if streaming:
                due |= relinked
        await self.store.mark_pending(due, settling=touched)

    async def _owners(self, changes: list[StagedChange]) -> dict[tuple[str, str], UUID]:
        """The person holding each valid document number of the batch; a new person for a
        number nobody holds yet (one per number, however many records carry it)."""
        wanted = {
            (c.document_type or "01", c.number_index)
            for c in changes
            if c.number_index and not c.deleted
        }
        owners = await self.store.number_owners(wanted)
        claims: dict[tuple[str, str], UUID] = {}
        for change in changes:
            number = (change.document_type or "01", change.number_index or "")
            if change.number_index and not change.deleted and number not in owners:
                claims.setdefault(number, change.forced_person_id or uuid4())
        if claims:
            owners |= await self.store.claim_identities(claims)
            self._count("persons_new", len(claims))
        forced = {c.forced_person_id for c in changes if c.forced_person_id}
        await self.store.ensure_persons(set(owners.values()) | forced)
        return owners

    async def _resolution(
        self,
        change: StagedChange,
        before: Any,
        owners: dict[tuple[str, str], UUID],
        demographic: dict[str, tuple[UUID, ...]],
        references: dict[str, UUID | None],
        linked_refs: dict[str, UUID | None],
    ) -> Resolution:
        if change.deleted:  # keeps its last link (or none: a queued record leaves the queue)
            if before is None or before.link_kind == LinkKind.REVIEW.value:
                return Resolution(LinkKind.NONE)
            return Resolution(LinkKind(before.link_kind), before.person_id)
        if change.forced_person_id is not None:
            return Resolution(LinkKind.EXACT, change.forced_person_id)
        defects = tuple(change.defects)
        if defects and before is not None and before.link_kind in _MAY_HAVE_REVIEW:
            review = await self.store.review_entry_of(*change.key)
            if (
                review is not None
                and review.state == ReviewState.RESOLVED
                and review.person_id
                and review.resolved_by not in (CLOSED_BY_SOURCE, CLOSED_BY_BUILDER)
            ):
                # A clerk linked this record: the decision stands while the number stays invalid.
                return Resolution(LinkKind.CANDIDATE, review.person_id)
        ident = Identification(
            document_type=change.document_type,
            number_index=change.number_index,
            demographic_index=change.demographic_index,
            defects=defects,
            link_ref=change.link_ref,
        )
        ref = change.link_ref
        return decide(
            ident,
            number_owner=owners.get((change.document_type or "01", change.number_index or "")),
            demographic_matches=demographic.get(change.demographic_index or "", ()),
            reference_owner=(linked_refs[ref] if ref in linked_refs else references.get(ref))
            if ref
            else None,
        )

    async def rebuild_pending(
        self, *, limit: int = 500, settling: Settling | None = None, floor: MarkFloor | None = None
    ) -> int:
        """Rebuild up to `limit` pending persons (skipping those another builder holds, and
        with `settling` those waiting for the rest of a snapshot; above a builder's `floor`:
        Store.take_pending); how many were rebuilt."""
        person_ids = await self.store.take_pending(limit, settling, floor)
        await self.rebuild(person_ids)
        return len(person_ids)

    async def rebuild(self, person_ids: Iterable[UUID]) -> None:
        """The golden record, gaps and facts of each person from all its current records;
        publish what changed since we last published."""
        ids = sorted(set(person_ids), key=str)
        if not ids:
            return
        persons = await self.store.persons(ids)
        records = await self.store.linked_records(ids)
        saved: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        new_demographics: set[str] = set()
        for person_id in ids:
            person = persons.get(person_id)
            if person is None:
                continue
            values, demographic = self._rebuild_one(
                person_id, person, records.get(person_id, []), changes
            )
            saved.append(values)
            if demographic is not None and demographic != person.demographic_index:
                new_demographics.add(demographic)
        await self.store.save_persons(saved)
        await self.store.save_changes(changes)
        await self.store.clear_set_aside([v["person_id"] for v in saved])
        # Write-back (writeback.py): only persons with a collection can have any.
        collected = {
            p: records[p]
            for p in ids
            if p in persons and any(x.system == SourceSystem.COLLECTION for x in records.get(p, ()))
        }
        if collected:
            counts = await WriteBacks(self.store.session).settle(
                collected, self.publish, datetime.now(UTC)
            )
            for what, n in counts.items():
                self._count(f"writeback_{what}", n)
        self.reviews_to_retry |= new_demographics

    async def rebuild_pending_apart(
        self,
        *,
        limit: int,
        transient: Callable[[BaseException], bool],
        settling: Settling | None = None,
    ) -> tuple[int, int]:
        """As `rebuild_pending`, each person in a savepoint of their own: one whose rebuild fails
        for a reason that is not `transient` is set aside with it (value-free: the error's class
        and SQLSTATE) instead of failing everyone taken with them. (taken, set aside)."""
        person_ids = await self.store.take_pending(limit, settling)
        set_aside = 0
        for person_id in sorted(person_ids, key=str):
            person = await savepoint(self.store.session)
            try:
                await self.rebuild([person_id])
            except Exception as error:
                await person.rollback()  # and what the person's rebuild published
                if transient(error):
                    raise
                await self.store.set_aside(person_id, failure_reason(error))
                set_aside += 1
            else:
                await person.commit()
        self._count("set_aside", set_aside)
        return len(person_ids), set_aside

    def _rebuild_one(
        self,
        person_id: UUID,
        person: Any,
        records: list[LinkedRecord],
        changes: list[dict[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        """The person's new row (and its demographic key); what changed since the last build
        added to `changes` (history.py), when given."""
        golden = golden_record(records)
        state = public_state(golden)
        if (event := person_event(person_id, state, person.public_state)) is not None:
            self.publish(event)
            self._count(type(event).__name__)
        facts, emitted = facts_events(
            person_id, current_facts(person_id, golden), person.emitted_facts or {}
        )
        for event in facts:
            self.publish(event)
            self._count("facts", len(event.facts))
        name, birth, gender = (golden.value(k) for k in (r.NAME, r.BIRTH_DATE, r.GENDER))
        demographic = None
        if name and birth and gender:
            demographic = self.protector.demographic_index(name, date.fromisoformat(birth), gender)
        document = GoldenDocument.of(golden)
        if changes is not None:
            previous = None
            if person.golden_ciphertext is not None:
                previous = GoldenDocument.opened(
                    self.protector, person_id, person.golden_ciphertext, person.key_id
                )
            changes += value_changes(self.protector, person_id, previous, document)
        region = state["region_code"]
        household = "".join(str(golden.value(r.HOUSEHOLD_NUMBER) or "").split())
        return {
            "person_id": person_id,
            "demographic_index": demographic,
            "public_state": state,
            "emitted_facts": emitted,
            "key_id": self.protector.key_id,
            "golden_ciphertext": document.sealed(self.protector, person_id),
            # What a survey of a division selects and orders by (routes.py survey-subjects).
            "region_code": region,
            "household_registered": state["household_registered_locally"],
            "deceased": state["deceased"],
            "household_index": self.protector.household_index(region, household)
            if region and household
            else None,
        }, demographic

    async def merge(self, merged: UUID, survivor: UUID) -> None:
        """One person under two person_ids (a clerk found "one person under two numbers",
        domain.md §3): the merged id's records and numbers move to the survivor, its facts are
        retracted, PersonsMerged retires it, and the survivor is rebuilt with everything."""
        person = (await self.store.persons([merged])).get(merged)
        if person is None:
            raise LookupError("no such person")
        await self.store.move_person(merged, survivor)
        retractions, _ = facts_events(merged, {}, person.emitted_facts or {})
        for event in retractions:
            self.publish(event)
        self.publish(PersonsMerged(merged_person_id=merged, surviving_person_id=survivor))
        await self.store.save_changes(merge_changes(self.protector, merged, survivor))
        await self.store.retire_person(merged)
        await self.rebuild([survivor])
        self._count("PersonsMerged")

    async def retry_reviews(self, demographics: set[str]) -> None:
        """Records that waited in the queue for a person with this name, birth date and gender:
        linked as candidates once exactly one such person exists (that person is then pending).
        Run after the unit of work that named these keys committed (`reviews_to_retry`)."""
        for entry in await self.store.open_reviews_for(demographics):
            matches = await self.store.demographic_matches(entry.demographic_index)
            if len(matches) != 1:
                continue
            await self.link_reviewed(
                entry, matches[0], outcome=ReviewOutcome.AUTO_LINKED, by=CLOSED_BY_BUILDER
            )
            self._count("candidate_retried")

    async def link_reviewed(
        self, entry: Any, person_id: UUID, *, outcome: ReviewOutcome, by: str
    ) -> None:
        """Link a queued record to `person_id` as a candidate (a clerk's decision, or the one
        person its demographic key matches), with the rows that name it (an ac01's ac02/ac60);
        close its queue entry; the persons concerned become pending."""
        await self.store.link_candidate(entry.source_table, entry.record_key, person_id)
        await self.store.close_review(entry.source_table, entry.record_key, outcome, person_id, by)
        ref = f"{entry.source_table}|{entry.record_key}"
        touched = await self.store.relink_dependents_many({ref: person_id})
        await self.store.mark_pending(touched | {person_id})

    def _count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


@asynccontextmanager
async def golden_records_work(
    database: Database,
    protector: Protector,
    *,
    service: str,
    linking: bool = False,
    publish: Publish | None = None,
    counts: dict[str, int] | None = None,
) -> AsyncIterator[GoldenRecords]:
    """One unit of work on the golden records — the builder's, a clerk's, a test's: a transaction
    (`unit_of_work`: the effects and the events published through the outbox commit together),
    the GoldenRecords on it, and once it has committed, the reviews it named retried in a unit of
    work of their own (`GoldenRecords.reviews_to_retry`). `linking`: the work links records to
    persons outside resolution (a review resolved, a merge), so it first waits for every
    resolution under way and holds the next off (`Store.hold_resolution`). `publish` replaces
    the outbox (tests that read what is published); `counts` accumulates what the work did."""
    async with unit_of_work(database, service=service) as uow:
        store = Store(uow.session, protector)
        if linking:
            await store.hold_resolution()
        golden_records = GoldenRecords(
            store, protector, publish or uow.publish_event, {} if counts is None else counts
        )
        yield golden_records
    await _retry_reviews(golden_records, database, service=service, publish=publish)


async def _retry_reviews(
    golden_records: GoldenRecords, database: Database, *, service: str, publish: Publish | None
) -> None:
    """The reviews `golden_records`'s committed unit of work named, retried in one of their own.
    Usually no queued record waits for these keys (every first build names its person's), or
    none has its one person yet (a snapshot's invalid numbers, queued before their person is
    built): only when one can be linked is the resolvers' key awaited (`Store.hold_resolution`),
    so neither rebuilds nor resolutions queue behind one another during a snapshot. One that
    cannot be linked yet is retried after the commit of the rebuild that gives a person its key
    (the later of the two commits sees both)."""
    if not golden_records.reviews_to_retry:
        return
    demographics, golden_records.reviews_to_retry = golden_records.reviews_to_retry, set()
    async with unit_of_work(database, service=service) as uow:
        store = Store(uow.session, golden_records.protector)
        queued = {e.demographic_index for e in await store.open_reviews_for(demographics)}
        matches = await store.demographic_matches_many(queued)
        if not any(len(persons) == 1 for persons in matches.values()):
            return
        await store.hold_resolution()
        retry = GoldenRecords(
            store, golden_records.protector, publish or uow.publish_event, golden_records.counts
        )
        await retry.retry_reviews(demographics)


def failure_reason(error: BaseException) -> str:
    """What failed, without a value: the innermost error's class and its SQLSTATE if it has one
    (PostgreSQL's messages may quote the value refused, a person's data)."""
    innermost, sqlstate = error, None
    current: BaseException | None = error
    for _ in range(10):  # SQLAlchemy's error → the driver's adapter → asyncpg's
        if current is None:
            break
        innermost = current
        sqlstate = sqlstate or getattr(current, "sqlstate", None)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    name = type(innermost).__name__
    return f"{name} (SQLSTATE {sqlstate})" if isinstance(sqlstate, str) else name


def _ref(change: StagedChange) -> str:
    """How a dependent row names this one (records.SourceRecord.link_ref)."""
    return f"{change.source_table}|{change.record_key}"


def _row(change: StagedChange, resolution: Resolution, before: Any) -> dict[str, Any]:
    """The record's current state. A deletion keeps its position (a late copy of an older
    change stays out) and its last link, but no personal data."""
    return {
        "source_table": change.source_table,
        "record_key": change.record_key,
        "person_id": resolution.person_id,
        "link_kind": resolution.kind.value,
        "position": change.position,
        "deleted": change.deleted,
        "claims_ciphertext": change.claims_ciphertext,
        "key_id": change.key_id,
        "facts": change.facts,
        "provenance": change.provenance,
        "link_ref": change.link_ref,
        "number_index": change.number_index,
        "demographic_index": change.demographic_index,
        "observed_at": change.observed_at,
        "changed_at": change.changed_at,
    }
