"""Matching against the population generator's ground truth: a
seeded population's source rows go through identity's registry (tests/identity's Harness: the
snapshot as change events), what identity publishes goes through matching's handler on a real
database, and every person's verdict is compared with the generator's expected outcome
(stack/canbao_stack/simulators/expected.py). When they disagree, the confusion per insurance
and the first differences are printed."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from canbao_contracts.envelope import Envelope, encode
from canbao_contracts.events import Event
from canbao_matching.evaluation import Evaluator, today_in_china
from canbao_matching.handlers import HANDLER
from canbao_matching.tables import persons
from canbao_platform.db import Database
from canbao_platform.messaging import InboundMessage, unit_of_work
from canbao_stack.simulators.population import seed
from canbao_stack.simulators.rates import Rates
from canbao_stack.simulators.store import load_expected
from tests.identity.conftest import Harness
from tests.identity.feed import snapshot_messages

PEOPLE = 2_000
# Dirtier than life (as identity's ground truth), so every survey reason shows many times.
RATES = Rates(
    legacy_15=0.2,
    lowercase_x=0.5,
    spaces=0.1,
    wrong_check_digit=0.2,
    name_variant=0.1,
    identity_conflict=0.02,
    foreign_document=0.02,
)
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
INSURANCES = ("pension", "medical", "injury", "unemployment", "maternity")


def inbound(event: Event, offset: int) -> InboundMessage:
    record = encode(event, source="/canbao/identity")
    return InboundMessage(
        topic=record.topic,
        partition=0,
        offset=offset,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers),
        timestamp=0,
        envelope=Envelope.from_headers(record.headers),
    )


async def feed(database: Database, events: list[Event]) -> None:
    """identity's events through matching's handler, 500 per transaction as a consumed batch
    would be, then the evaluator."""
    for start in range(0, len(events), 500):
        async with unit_of_work(database, service="matching") as uow:
            for offset, event in enumerate(events[start : start + 500], start):
                await HANDLER(inbound(event, offset), uow)
    await Evaluator(database, clock=lambda: NOW).run_once()


def outcome_of(row: Any) -> dict[str, Any]:
    """Our verdict in the shape of simulator.expected_outcome."""
    verdict = row.verdict if row is not None else None
    if verdict is None:
        return {
            "deceased": False,
            "in_scope": False,
            "statuses": dict.fromkeys(INSURANCES),
            "flags": [],
            "survey_reasons": [],
            "registration": None,
        }
    deceased = verdict["deceased"]
    return {
        "deceased": deceased,
        "in_scope": not deceased,
        "statuses": verdict["statuses"],
        "flags": verdict["flags"],
        "survey_reasons": verdict["survey_reasons"],
        # The contract says a dead person's registration is confirmed; the generator says none.
        "registration": None if deceased else verdict["registration"],
    }


def differences(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    fields = ("deceased", "in_scope", "statuses", "registration")
    diffs = [f"{f}: want {want[f]} got {got[f]}" for f in fields if want[f] != got[f]]
    flags = (
        {(f["type"], f["insurance"]) for f in want["flags"]},
        {(f["type"], f["insurance"]) for f in got["flags"]},
    )
    if flags[0] != flags[1]:
        diffs.append(f"flags: want {sorted(flags[0])} got {sorted(flags[1])}")
    if want["survey_reasons"] != list(got["survey_reasons"]):
        diffs.append(f"reasons: want {want['survey_reasons']} got {got['survey_reasons']}")
    return diffs


@pytest.fixture
async def population(make_database: Callable[[], str]) -> tuple[str, dict[str, dict[str, Any]]]:
    sources = make_database()
    await seed(sources, PEOPLE, 11, rates=RATES, loaders=1)
    libpq = sources.replace("postgresql+asyncpg://", "postgresql://")
    return sources, await load_expected(libpq, as_of=today_in_china(NOW))


async def compare(
    expected: dict[str, dict[str, Any]], person_ids: dict[str, UUID], database: Database
) -> list[str]:
    """Every person's verdict against the expected outcome; prints the agreement, and the
    confusion per insurance when some disagree. Returns the disagreements."""
    async with database.engine.connect() as connection:
        rows = {
            r.person_id: r
            for r in await connection.execute(sa.select(persons.c.person_id, persons.c.verdict))
        }
    confusion: dict[str, collections.Counter[tuple[Any, Any]]] = collections.defaultdict(
        collections.Counter
    )
    disagreements: list[str] = []
    for key, person in expected.items():
        got = outcome_of(rows.get(person_ids[key]))
        for insurance in INSURANCES:
            confusion[insurance][(person["statuses"][insurance], got["statuses"][insurance])] += 1
        diffs = differences(person, got)
        if diffs:
            disagreements.append(f"{key} ({person['situation']}): " + "; ".join(diffs))
    print(
        f"{len(expected) - len(disagreements)} of {len(expected)} people agree with the "
        f"ground truth as of {next(iter(expected.values()))['as_of']}"
    )
    # Not a vacuous agreement: the population shows every kind of verdict.
    seen = {code for counts in confusion.values() for code, _ in counts}
    assert {"11", "12", "21", "27", "30", "81", "82", "91", "92", "93", "94", "95", None} <= seen
    if disagreements:
        for insurance, counts in confusion.items():
            wrong = {pair: n for pair, n in counts.items() if pair[0] != pair[1]}
            print(f"{insurance}: (expected, ours) → people where they differ: {wrong}")
        print("\n".join(disagreements[:40]))
    return disagreements


async def test_verdicts_agree_with_the_ground_truth_for_every_person(
    population: tuple[str, dict[str, dict[str, Any]]], harness: Harness, matching_db: Database
) -> None:
    sources, expected = population
    messages = await snapshot_messages(sources)
    for start in range(0, len(messages), 500):
        await harness.apply(messages[start : start + 500])
    started = time.perf_counter()
    await feed(matching_db, harness.published)
    elapsed = time.perf_counter() - started
    print(
        f"\nmatching applied {len(harness.published)} events of identity in {elapsed:.1f} s "
        f"({len(harness.published) / elapsed:.0f} events/s)"
    )
    person_ids: dict[str, UUID] = {}
    for key, person in expected.items():
        document = person["document"]
        number, doc_type = (
            (person["id_number"], "01")
            if document is None
            else (document["number"], document["type"])
        )
        person_id = await harness.person_of(number, doc_type)
        assert person_id is not None, f"{key} did not resolve in identity"
        person_ids[key] = person_id
    assert any(p["flags"] for p in expected.values() if p["deceased"])
    assert any(p["flags"] for p in expected.values() if not p["deceased"])
    reasons = {r for p in expected.values() for r in p["survey_reasons"]}
    assert reasons == {
        "uninsured",
        "partially_insured",
        "interrupted",
        "missing_info",
        "inaccurate_info",
        "identity_conflict",
    }
    disagreements = await compare(expected, person_ids, matching_db)
    assert not disagreements, f"{len(disagreements)} of {len(expected)} people disagree"

    # Two years on, with no new fact: the daily re-check alone brings every verdict that time
    # changes (children turning 16) to what the ground truth says for that day.
    later = NOW + timedelta(days=730)
    libpq = sources.replace("postgresql+asyncpg://", "postgresql://")
    expected_later = await load_expected(libpq, as_of=today_in_china(later))
    changed = await Evaluator(matching_db, clock=lambda: later).run_once()
    print(f"the re-check two years later changed {changed} verdicts")
    assert changed > 0
    disagreements = await compare(expected_later, person_ids, matching_db)
    assert not disagreements, f"{len(disagreements)} people disagree two years later"
