"""Matching end to end on the real broker and a real database: contract events published to the
registry topics, verdicts read back from registry.statuses. Duplicates, replays and any order
give the same verdict; a verdict is published only when it changed; the daily re-check turns a
child of 16 into someone who should join the pension."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from canbao_contracts.codes import HouseholdStatus, RegistrationState, StatusCode, SurveyReason
from canbao_contracts.events import (
    CollectionApproved,
    EnrolmentState,
    Event,
    Fact,
    FactAsserted,
    PersonsMerged,
    PersonUpdated,
    StatusesChanged,
    StatusesWithdrawn,
)
from canbao_contracts.events.vocabulary import Channel
from canbao_matching.rules import Situation, evaluate
from canbao_matching.tables import persons
from tests.matching.conftest import Service
from tests.matching.people import TODAY, enrolled, household, job, person, study

S = StatusCode


def fact_event(pid: uuid.UUID, fact: Fact, **changes: Any) -> FactAsserted:
    """The fact as identity asserts it about `pid` (its id was derived from `pid`)."""
    return FactAsserted(person_id=pid, fact=fact.model_copy(update=changes))


async def test_a_person_and_their_enrolments_reach_a_verdict_on_registry_statuses(
    service: Service,
) -> None:
    pid = uuid.uuid4()
    pension, medical = enrolled(pid, S.RESIDENT_PENSION), enrolled(pid, S.RESIDENT_MEDICAL)
    await service.publish([person(pid), fact_event(pid, pension), fact_event(pid, medical)])
    events = await service.quiet()
    final = service.latest(pid).verdict
    assert final.statuses.pension is S.RESIDENT_PENSION
    assert final.statuses.medical is S.RESIDENT_MEDICAL
    assert final.registration is RegistrationState.CONFIRMED and not final.needs_survey
    # Each publication is a change from the one before it, and says what changed.
    mine = [e for e in events if e.person_id == pid]
    assert mine[0].previous is None
    for before, after in itertools.pairwise(mine):
        assert after.previous == before.verdict and after.verdict != before.verdict
    assert all(e.source_observed_at is not None for e in mine[1:])


async def test_an_enrolment_suspended_reaches_a_new_verdict_with_what_changed(
    service: Service,
) -> None:
    pid = uuid.uuid4()
    pension, medical = enrolled(pid, S.RESIDENT_PENSION), enrolled(pid, S.RESIDENT_MEDICAL)
    await service.publish([person(pid), fact_event(pid, pension), fact_event(pid, medical)])
    await service.quiet()
    before = len(service.received)
    observed = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    await service.publish(
        [fact_event(pid, pension, state=EnrolmentState.SUSPENDED, revision=2, observed_at=observed)]
    )
    event = (await service.statuses(before + 1))[-1]
    assert event.person_id == pid
    assert event.verdict.statuses.pension is S.INTERRUPTED
    assert event.previous is not None and event.previous.statuses.pension is S.RESIDENT_PENSION
    assert event.changed == (
        "statuses",
        "needs_survey",
        "survey_reasons",
        "registration",
        "confirmed_by",
    )
    assert event.verdict.survey_reasons == (SurveyReason.INTERRUPTED,)
    assert event.source_observed_at == observed


async def test_duplicates_replays_and_any_order_give_the_same_verdict_and_nothing_more(
    service: Service,
) -> None:
    rng = random.Random(6)
    people, expected = [], {}
    for n in range(30):
        pid = uuid.uuid4()
        p = person(pid, birth_date=date(1960 + n, 1 + n % 12, 1 + n % 28))
        facts = [enrolled(pid, S.RESIDENT_MEDICAL), job(pid)]
        if n % 3 == 0:
            facts.append(enrolled(pid, S.URBAN_EMPLOYEE_PENSION, unit="U1"))
        if n % 5 == 0:
            facts.append(study(pid))
        # A newer revision (suspended) and a late older one (paying) of one enrolment.
        newer = enrolled(pid, S.RESIDENT_PENSION, EnrolmentState.SUSPENDED, revision=3)
        older = newer.model_copy(update={"state": EnrolmentState.PAYING, "revision": 2})
        final = [*facts, newer]
        events: list[Event] = [
            p,
            *(fact_event(pid, f) for f in facts),
            fact_event(pid, newer),
            fact_event(pid, older),
        ]
        people.append(events)
        situation = Situation(person=p, facts=tuple(final), latest_source_change=newer.observed_at)
        expected[pid] = evaluate(situation, TODAY)
    everything = [e for events in people for e in events]
    rng.shuffle(everything)
    ids = [str(uuid.uuid4()) for _ in everything]
    await service.publish(everything, ids=ids)
    await service.quiet()
    assert {pid: service.latest(pid).verdict for pid in expected} == expected
    published = len(service.received)
    # The same events again (a replay: same ce_id), and copies under new ids: nothing changes.
    await service.publish(everything, ids=ids)
    await service.publish(reversed(everything))
    assert len(await service.quiet(3.0)) == published


async def test_a_person_who_leaves_the_scope_has_their_verdict_withdrawn(
    service: Service,
) -> None:
    """Household moved out of the province, no local enrolment: out of scope, and the verdict
    published before is withdrawn (reporting must stop counting it). Back in: a first verdict
    again."""
    pid = uuid.uuid4()
    normal = household(pid, HouseholdStatus.NORMAL)
    await service.publish([person(pid), fact_event(pid, normal)])
    await service.quiet()
    counted = service.latest(pid).verdict
    published = len(service.received)

    moved = fact_event(
        pid,
        normal,
        status=HouseholdStatus.MOVED_OUT,
        revision=2,
        observed_at=normal.observed_at + timedelta(days=1),
    )
    await service.publish([moved])
    events = await service.quiet()
    assert len(events) == published + 1
    withdrawn = events[-1]
    assert isinstance(withdrawn, StatusesWithdrawn) and withdrawn.person_id == pid
    assert withdrawn.previous == counted
    assert withdrawn.source_observed_at == moved.fact.observed_at
    async with service.database.engine.connect() as connection:
        row = (await connection.execute(sa.select(persons).where(persons.c.person_id == pid))).one()
    assert row.in_scope is False and row.verdict is None

    back = fact_event(pid, normal, revision=3, observed_at=normal.observed_at + timedelta(days=9))
    await service.publish([back])
    events = await service.quiet()
    assert len(events) == published + 2
    again = events[-1]
    assert isinstance(again, StatusesChanged) and again.previous is None
    assert again.verdict == counted


async def test_a_change_that_does_not_touch_the_verdict_publishes_nothing(
    service: Service,
) -> None:
    pid = uuid.uuid4()
    await service.publish([person(pid), fact_event(pid, enrolled(pid, S.RESIDENT_MEDICAL))])
    await service.quiet()
    published = len(service.received)
    renamed = PersonUpdated(
        **(person(pid).model_dump() | {"masked_name": "李*"}), changed=("masked_name",)
    )
    await service.publish([renamed])
    assert len(await service.quiet()) == published


async def test_the_daily_recheck_makes_a_child_turning_16_need_a_pension(
    service: Service,
) -> None:
    pid = uuid.uuid4()
    tomorrow = TODAY + timedelta(days=1)
    child = person(pid, birth_date=tomorrow.replace(year=tomorrow.year - 16))
    await service.publish([child, fact_event(pid, enrolled(pid, S.RESIDENT_MEDICAL))])
    await service.quiet()
    assert service.latest(pid).verdict.statuses.pension is S.NOT_REQUIRED
    assert await service.evaluator.run_once() == 0  # nothing due today
    published = len(service.received)
    service.clock.now += timedelta(days=1)  # the evaluator's next wake-up is on the birthday
    event = (await service.statuses(published + 1))[-1]
    assert event.person_id == pid and event.source_observed_at is None
    assert event.verdict.statuses.pension is S.UNINSURED_INDIVIDUAL
    assert event.verdict.survey_reasons == (SurveyReason.UNINSURED,)
    assert len(await service.quiet()) == published + 1  # once, not at every wake-up


async def test_an_approved_collection_resolving_the_interruption_verifies_the_registration(
    service: Service,
) -> None:
    pid = uuid.uuid4()
    suspended = enrolled(pid, S.RESIDENT_PENSION, EnrolmentState.SUSPENDED)
    await service.publish(
        [
            person(pid),
            fact_event(pid, suspended),
            fact_event(pid, enrolled(pid, S.RESIDENT_MEDICAL)),
        ]
    )
    await service.quiet()
    assert service.latest(pid).verdict.registration is RegistrationState.NEEDS_SURVEY
    reviewed = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    collection = CollectionApproved(
        collection_id=uuid.uuid4(),
        person_id=pid,
        channel=Channel.COUNTER,
        items={},
        resolved_reasons=(SurveyReason.INTERRUPTED,),
        handler="clerk-1",
        handled_at=reviewed,
        reviewer="reviewer-1",
        reviewed_at=reviewed,
    )
    await service.publish([collection])
    await service.quiet()
    verdict = service.latest(pid).verdict
    assert verdict.registration is RegistrationState.VERIFIED and not verdict.needs_survey
    assert verdict.statuses.pension is S.INTERRUPTED  # the code is the systems' word


async def test_a_merged_person_is_no_longer_evaluated(service: Service) -> None:
    retired, survivor = uuid.uuid4(), uuid.uuid4()
    await service.publish([person(retired), person(survivor)])
    await service.quiet()
    published = len(service.received)
    merge = PersonsMerged(merged_person_id=retired, surviving_person_id=survivor)
    await service.publish([merge, fact_event(retired, enrolled(retired, S.RESIDENT_MEDICAL))])
    assert len(await service.quiet()) == published
    async with service.database.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(persons.c.pending, persons.c.merged_into).where(
                    persons.c.person_id == retired
                )
            )
        ).one()
    assert row.merged_into == survivor and row.pending is False


async def test_delay_from_the_source_commit_to_the_verdict(service: Service) -> None:
    """matching's share of the source-to-verdict delay: from a fact's observed_at (the
    source commit, stamped now) to its StatusesChanged read back from the broker."""
    people = [uuid.uuid4() for _ in range(200)]
    await service.publish([person(pid) for pid in people])
    await service.quiet()
    start = len(service.received)
    for chunk in range(0, len(people), 20):  # a steady trickle, not one burst
        now = datetime.now(UTC)
        await service.publish(
            [
                fact_event(pid, enrolled(pid, S.RESIDENT_MEDICAL), observed_at=now)
                for pid in people[chunk : chunk + 20]
            ]
        )
        await asyncio.sleep(0.1)
    await service.statuses(start + len(people))
    delays = sorted(
        (arrived - event.source_observed_at).total_seconds()
        for event, arrived in zip(service.received[start:], service.arrived[start:], strict=True)
        if event.source_observed_at is not None
    )
    assert len(delays) == len(people)
    p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99)]
    print(
        f"\nsource commit → verdict on registry.statuses: p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms over {len(delays)} changes"
    )
    assert 0 < p50 <= p99 < 10.0  # generous: two other engineers share the two cores
