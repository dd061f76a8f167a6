"""What identity tells the registry (contracts: registry.persons, registry.facts), built from a
golden record. Pure. Only the masked name, birth date, gender and regions leave identity, never
the number, not even masked; a gap's reason is value-free (canbao_contracts.events.person_state).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from pydantic import TypeAdapter

from canbao_contracts.codes import HouseholdType, PersonalIdentity, SourceSystem
from canbao_contracts.events import (
    FactsAsserted,
    FactSource,
    PersonDeceased,
    PersonRegistered,
    PersonUpdated,
    fact_id_for,
)
from canbao_contracts.events.base import Event
from canbao_contracts.events.facts import MAX_FACTS_PER_EVENT, Fact
from canbao_contracts.id_numbers import mask_name
from canbao_identity import records as r
from canbao_identity.adapters.values import region_code
from canbao_identity.golden import Golden

_HOUSEHOLD_TYPES: Final = {c.value for c in HouseholdType}
_IDENTITIES: Final = {c.value for c in PersonalIdentity}
_FACT: Final = TypeAdapter(Fact)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC).isoformat()
# json.dumps(content, sort_keys=True), the digest's bytes (stored in emitted_facts: they must
# never change), by one encoder rather than one built per call.
_DIGEST_JSON: Final = json.JSONEncoder(sort_keys=True).encode


def public_state(golden: Golden) -> dict[str, Any]:
    """The PersonState fields but person_id, JSON-ready (what we compare to publish changes)."""
    name = golden.value(r.NAME)
    household_region = region_code(golden.value(r.HOUSEHOLD_REGION))
    inaccurate = {(g.item.value, g.reason): g.source for g in golden.inaccurate}
    return {
        "masked_name": mask_name(name) if name and name.strip() else None,
        "document_type": golden.value(r.DOCUMENT_TYPE) or "01",
        "birth_date": golden.value(r.BIRTH_DATE),
        "gender": golden.value(r.GENDER) if golden.value(r.GENDER) in ("1", "2") else None,
        "household_type": _code(golden.value(r.HOUSEHOLD_TYPE), _HOUSEHOLD_TYPES),
        "household_region_code": household_region,
        # PersonState.region_code: the household region when household-registered locally, else
        # where they live or are insured (a residence permit's household region is elsewhere).
        "region_code": (household_region if golden.household_registered else None)
        or region_code(golden.value(r.REGION)),
        "household_registered_locally": golden.household_registered,
        "household_data_obtained": golden.household_registered,
        "personal_identity": _code(golden.value(r.PERSONAL_IDENTITY), _IDENTITIES),
        "deceased": golden.deceased,
        "death_date": golden.value(r.DEATH_DATE) if golden.deceased else None,
        "missing": [item.value for item in golden.missing],
        "inaccurate": [
            {"item": item, "reason": reason, "source": source}
            for (item, reason), source in sorted(inaccurate.items())
        ],
        "identity_conflict": golden.identity_conflict,
        # A newcomer a counter registered, someone a survey found: matching's long-term residents.
        "registered_by_collection": any(
            x.system == SourceSystem.COLLECTION for x in golden.contributing
        ),
    }


def person_event(
    person_id: UUID, state: dict[str, Any], previous: dict[str, Any] | None
) -> Event | None:
    """Registered the first time, Deceased when death is learnt, else Updated naming what
    changed; None when nothing downstream can see changed."""
    if previous == state:
        return None
    if previous is None:
        return PersonRegistered(person_id=person_id, **state)
    if state["deceased"] and not previous.get("deceased"):
        return PersonDeceased(person_id=person_id, **state)
    changed = tuple(sorted(k for k in state if state[k] != previous.get(k)))
    return PersonUpdated(person_id=person_id, changed=changed, **state)


def current_facts(person_id: UUID, golden: Golden) -> dict[str, tuple[int, str, dict[str, Any]]]:
    """fact_id → (revision, digest of the content, the fact as JSON) of every fact the person's
    contributing records state. Each fact_id is fact_id_for(person_id, the content's kind, the
    content's source): `facts_events` relies on it."""
    facts = {}
    for record in golden.contributing:
        system, table = record.source_table.split(".", 1)
        source = FactSource(system=system, table=table, record_key=record.record_key)
        # source.model_dump(): its fields are strings, validated as they are.
        source_fields = {"system": system, "table": table, "record_key": record.record_key}
        for draft in record.facts:
            if "kind" in draft.fields or "source" in draft.fields:
                raise ValueError(f"a {draft.kind} fact's fields name a kind or a source")
            fact_id = fact_id_for(person_id, draft.kind, source)
            content = {"kind": draft.kind, "source": dict(source_fields), **draft.fields}
            digest = hashlib.sha256(_DIGEST_JSON(content).encode()).hexdigest()[:32]
            content["observed_at"] = record.observed_at or _EPOCH
            facts[str(fact_id)] = (record.position, digest, content)
    return facts


def facts_events(
    person_id: UUID,
    current: dict[str, tuple[int, str, dict[str, Any]]],
    emitted: dict[str, list[Any]],
) -> tuple[list[FactsAsserted], dict[str, list[Any]]]:
    """The facts to assert (new or changed) and retract (gone), as one event (several beyond
    MAX_FACTS_PER_EVENT; none when nothing changed), and the new emitted map. A revision only
    grows per fact_id (consumers ignore an equal or lower one). `current` is
    `current_facts(person_id, …)`.

    The facts are validated by their kind's rules; the events around them are built without
    validation: beyond its fields' types, FactsAsserted checks only that each fact_id is derived
    from the person, kind and source (a uuid5 per fact), which is how current_facts made it, and
    stated once, which the map's keys are. Consumers validate the events in full."""
    facts, now = [], dict(emitted)
    for fact_id, (position, digest, content) in sorted(current.items()):
        previous = emitted.get(fact_id)
        if previous is not None and previous[1] == digest and not previous[2]:
            continue
        revision = max(position, previous[0] + 1) if previous else position
        facts.append(_fact(fact_id, content, revision, retracted=False))
        now[fact_id] = [revision, digest, False, content]
    for fact_id in sorted(set(emitted) - set(current)):
        revision, digest, retracted, content = emitted[fact_id]
        if not retracted:
            facts.append(_fact(fact_id, content, revision + 1, retracted=True))
            now[fact_id] = [revision + 1, digest, True, content]
    events = [
        FactsAsserted.model_construct(
            person_id=person_id, facts=tuple(facts[start : start + MAX_FACTS_PER_EVENT])
        )
        for start in range(0, len(facts), MAX_FACTS_PER_EVENT)
    ]
    return events, now


def _fact(fact_id: str, content: dict[str, Any], revision: int, *, retracted: bool) -> Fact:
    return _FACT.validate_python(
        {**content, "fact_id": fact_id, "revision": revision, "retracted": retracted}
    )


def _code(value: str | None, codes: set[str] | frozenset[str]) -> str | None:
    return value if value in codes else None
