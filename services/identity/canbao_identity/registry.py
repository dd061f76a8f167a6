"""The service layer, in two steps that each run in one unit of work:

1. `Registry.apply` — one source record (or its deletion): resolve it to a person, save it
   (claims encrypted), and mark the persons it touches as *pending*.
2. `Registry.rebuild` — the pending persons: recompute each golden record, its gaps and facts
   from all its current records, and publish what changed since the last publication.

Why two steps: a person arrives as ~6 rows across the source systems, often in one burst (a
snapshot, a month-end batch). Rebuilding after every row would decrypt and re-derive the person
six times; marking and draining rebuilds once, and the drain loads hundreds of persons per query.
The mark is written in the change's own transaction, so no change can be applied without its
person being rebuilt eventually (the builder component drains continuously, see app.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any
from uuid import UUID, uuid4

from canbao_contracts.events.base import Event
from canbao_identity import records as r
from canbao_identity.golden import LinkedRecord, golden_record
from canbao_identity.protection import Protector
from canbao_identity.publication import current_facts, fact_events, person_event, public_state
from canbao_identity.records import SourceRecord
from canbao_identity.resolution import Identification, LinkKind, Resolution, decide, identify
from canbao_identity.store import Store, person_context, record_context

Publish = Callable[[Event], Any]
# A record that was never in review (or resolved by a clerk) has no queue entry to look at.
_MAY_HAVE_REVIEW = (LinkKind.REVIEW.value, LinkKind.CANDIDATE.value)


@dataclasses.dataclass
class Registry:
    store: Store
    protector: Protector
    publish: Publish
    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    async def apply(self, source_table: str, record_key: str, position: int,
                    observed_at: str | None, record: SourceRecord | None, *,
                    person_id: UUID | None = None, provenance: dict[str, Any] | None = None,
                    ) -> bool:  # fmt: skip
        """Apply a record (None: the row was deleted) unless a newer change of it was applied.
        `person_id` forces the link (a collection naming its person). True if applied."""
        existing = await self.store.record(source_table, record_key)
        if existing is not None and existing.position >= position:
            self._count("stale")
            return False
        touched: set[UUID] = set()
        if existing is not None and existing.person_id is not None:
            touched.add(existing.person_id)
        if record is None:
            await self._delete(source_table, record_key, position, existing)
        else:
            linked = await self._link(source_table, record_key, position, observed_at, record,
                                      existing, person_id, provenance or {})  # fmt: skip
            if linked is not None:
                touched.add(linked)
        touched |= await self._follow(source_table, record_key)
        await self.store.mark_pending(touched)
        return True

    async def _delete(
        self, source_table: str, record_key: str, position: int, existing: Any
    ) -> None:
        values = {"source_table": source_table, "record_key": record_key, "position": position,
                  "deleted": True, "link_kind": LinkKind.NONE.value, "claims_ciphertext": None}  # fmt: skip
        if existing is not None:  # keep the marker: a late copy of an older change stays out
            values["person_id"] = existing.person_id
            values["link_kind"] = existing.link_kind
            if existing.link_kind in _MAY_HAVE_REVIEW:
                await self.store.close_review(source_table, record_key, "withdrawn", None, "source")
        await self.store.save_record(values)

    async def _link(self, source_table: str, record_key: str, position: int,
                    observed_at: str | None, record: SourceRecord, existing: Any,
                    forced: UUID | None, provenance: dict[str, Any]) -> UUID | None:  # fmt: skip
        ident = identify(record, self.protector)
        review = None
        if existing is not None and existing.link_kind in _MAY_HAVE_REVIEW:
            review = await self.store.review_entry(source_table, record_key)
        if forced is not None:
            resolution = Resolution(LinkKind.EXACT, forced)
            await self.store.ensure_person(forced)
        else:
            resolution = await self._resolve(ident, review)
        person_id = resolution.person_id
        if resolution.new_person:
            assert ident.number_index is not None and ident.document_type is not None
            person_id = await self.store.claim_identity(
                ident.document_type, ident.number_index, uuid4()
            )
            await self.store.ensure_person(person_id)
            self._count("persons_new")
        elif forced is not None and ident.number_index is not None and ident.document_type:
            await self.store.claim_identity(ident.document_type, ident.number_index, forced)
        context = record_context(source_table, record_key)
        await self.store.save_record({
            "source_table": source_table, "record_key": record_key, "person_id": person_id,
            "link_kind": resolution.kind.value, "position": position, "deleted": False,
            "claims_ciphertext": self.protector.encrypt(record.claims, context=context)
            if record.claims else None,
            "key_id": self.protector.key_id if record.claims else None,
            "facts": [{"kind": f.kind, "fields": f.fields} for f in record.facts],
            "provenance": provenance, "link_ref": record.link_ref,
            "number_index": ident.number_index, "demographic_index": ident.demographic_index,
            "observed_at": observed_at,
        })  # fmt: skip
        if resolution.kind is LinkKind.REVIEW:
            await self.store.open_review(source_table, record_key, resolution.review_reason or "",
                                         ident.demographic_index)  # fmt: skip
        elif review is not None:
            await self.store.close_review(
                source_table, record_key, "superseded", person_id, "source"
            )
        self._count(resolution.kind.value)
        return person_id

    async def _resolve(self, ident: Identification, review: Any) -> Resolution:
        if (review is not None and review.state == "resolved" and review.person_id is not None
                and review.resolved_by not in ("source", "auto") and ident.defects):  # fmt: skip
            # A clerk linked this record: the decision stands while the number stays invalid.
            return Resolution(LinkKind.CANDIDATE, review.person_id)
        owner = (await self.store.number_owner(ident.document_type or "01", ident.number_index)
                 if ident.number_index else None)  # fmt: skip
        return decide(
            ident, number_owner=owner,
            demographic_matches=await self.store.demographic_matches(ident.demographic_index),
            reference_owner=await self.store.reference_owner(ident.link_ref)
            if ident.link_ref else None,
        )  # fmt: skip

    async def _follow(self, source_table: str, record_key: str) -> set[UUID]:
        """Rows that name this one (ac02/ac60 → ac01) follow its link."""
        if source_table != "si_core.ac01":
            return set()
        ref = f"{source_table}|{record_key}"
        owner = await self.store.reference_owner(ref)
        left = await self.store.relink_dependents(ref, owner)
        return left | ({owner} if owner else set())

    async def rebuild_pending(self, *, limit: int = 500) -> int:
        """Rebuild up to `limit` pending persons (skipping those another builder holds); how
        many were rebuilt."""
        person_ids = await self.store.take_pending(limit)
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
        new_demographics: set[str] = set()
        for person_id in ids:
            person = persons.get(person_id)
            if person is None:
                continue
            values, demographic = self._rebuild_one(person_id, person, records.get(person_id, []))
            saved.append(values)
            if demographic is not None and demographic != person.demographic_index:
                new_demographics.add(demographic)
        await self.store.save_persons(saved)
        if new_demographics:
            await self._retry_reviews(new_demographics)

    def _rebuild_one(self, person_id: UUID, person: Any, records: list[LinkedRecord]
                     ) -> tuple[dict[str, Any], str | None]:  # fmt: skip
        golden = golden_record(records)
        state = public_state(golden)
        if (event := person_event(person_id, state, person.public_state)) is not None:
            self.publish(event)
            self._count(type(event).__name__)
        facts, emitted = fact_events(person_id, current_facts(person_id, golden),
                                     person.emitted_facts or {})  # fmt: skip
        for fact in facts:
            self.publish(fact)
        self._count("facts", len(facts))
        name, birth, gender = (golden.value(k) for k in (r.NAME, r.BIRTH_DATE, r.GENDER))
        demographic = None
        if name and birth and gender:
            demographic = self.protector.demographic_index(name, date.fromisoformat(birth), gender)
        document = {"values": golden.values,
                    "missing": [m.value for m in golden.missing],
                    "inaccurate": [dataclasses.asdict(g) for g in golden.inaccurate],
                    "identity_conflict": golden.identity_conflict,
                    "conflicting_records": sorted(f"{t}|{k}" for t, k in golden.conflicting),
                    "deceased": golden.deceased,
                    "household_registered": golden.household_registered}  # fmt: skip
        return {
            "person_id": person_id, "demographic_index": demographic, "public_state": state,
            "emitted_facts": emitted, "key_id": self.protector.key_id,
            "golden_ciphertext": self.protector.encrypt(document, context=person_context(person_id)),
        }, demographic  # fmt: skip

    async def _retry_reviews(self, demographics: set[str]) -> None:
        """Records that waited in the queue for a person with this name, birth date and gender:
        linked as candidates once exactly one such person exists (that person is then pending)."""
        for entry in await self.store.open_reviews_for(demographics):
            matches = await self.store.demographic_matches(entry.demographic_index)
            if len(matches) != 1:
                continue
            await self.store.link_candidate(entry.source_table, entry.record_key, matches[0])
            await self.store.close_review(entry.source_table, entry.record_key, "auto_linked",
                                          matches[0], "auto")  # fmt: skip
            await self.store.mark_pending({matches[0]})
            self._count("candidate_retried")

    def _count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n
