"""The popup against the population generator's ground truth: a
seeded population goes through identity (its Harness: the snapshot as change events) and
matching (its handler and evaluator, as tests/matching/test_ground_truth.py does); then a
province-wide clerk asks the gateway's popup — the gateway reading identity's and matching's
applications in-process over HTTP — for every person, and statuses, needs_survey and flags are
compared with the generator's expected outcome. Disagreements are printed, first forty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from canbao_gateway.app import create
from canbao_gateway.clock import clock
from canbao_gateway.staff import Role
from canbao_matching.evaluation import today_in_china
from canbao_platform.db import Database
from canbao_stack.simulators.population import seed
from canbao_stack.simulators.store import load_expected
from tests.gateway.conftest import Clock, bearer, serve, settings_for
from tests.gateway.test_popup import in_process, survey_in_process
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.feed import snapshot_messages
from tests.matching.conftest import matching_db as matching_db
from tests.matching.test_ground_truth import INSURANCES, NOW, feed
from tests.survey.conftest import survey_db as survey_db  # survey's fixtures
from tests.survey.conftest import survey_url as survey_url

PEOPLE = 1_000
CONCURRENT = 8
NO_STATUSES = dict.fromkeys(INSURANCES)


def disagreements(want: dict[str, Any], popup: dict[str, Any]) -> list[str]:
    """What the popup says differently from the ground truth (statuses, needs_survey, flags)."""
    got_statuses = popup["statuses"] or NO_STATUSES  # null for the dead and the out of scope
    diffs = []
    if want["statuses"] != got_statuses:
        diffs.append(f"statuses: want {want['statuses']} got {got_statuses}")
    if bool(want["needs_survey"]) != popup["needs_survey"]:
        diffs.append(f"needs_survey: want {want['needs_survey']} got {popup['needs_survey']}")
    flags = (
        {(f["type"], f["insurance"]) for f in want["flags"]},
        {(f["type"], f["insurance"]) for f in popup["flags"]},
    )
    if flags[0] != flags[1]:
        diffs.append(f"flags: want {sorted(flags[0])} got {sorted(flags[1])}")
    return diffs


async def test_the_popup_agrees_with_the_ground_truth_for_every_person(
    make_database: Callable[[], str],
    harness: Harness,
    matching_db: Database,
    survey_db: Database,
    gateway_url: str,
    test_clock: Clock,
    token_for: Any,
) -> None:
    sources = make_database()
    await seed(sources, PEOPLE, 11, loaders=1)
    libpq = sources.replace("postgresql+asyncpg://", "postgresql://")
    expected = await load_expected(libpq, as_of=today_in_china(NOW))
    messages = await snapshot_messages(sources)
    for start in range(0, len(messages), 500):
        await harness.apply(messages[start : start + 500])
    await feed(matching_db, harness.published)

    identity, matching = in_process(harness, matching_db)
    survey = survey_in_process(survey_db)
    app = create(
        settings_for(gateway_url),
        identity_transport=httpx.ASGITransport(app=identity),
        matching_transport=httpx.ASGITransport(app=matching),
        survey_transport=httpx.ASGITransport(app=survey),
    )
    app.dependency_overrides[clock] = lambda: test_clock
    headers = bearer(token_for(Role.COUNTER, scope="52"))
    gate = asyncio.Semaphore(CONCURRENT)

    async def ask(person: dict[str, Any], client: httpx.AsyncClient) -> httpx.Response:
        document = person["document"]
        if document is None:
            number, params = person["id_number"], {}
        else:
            number, params = document["number"], {"document_type": document["type"]}
        async with gate:
            return await client.get(
                f"/api/v1/counter/popup/{number}", params=params, headers=headers
            )

    started = time.perf_counter()
    async with serve(app) as client:
        responses = await asyncio.gather(*(ask(p, client) for p in expected.values()))
    elapsed = time.perf_counter() - started
    print(
        f"\n{len(responses)} popups in {elapsed:.1f} s ({len(responses) / elapsed:.0f}/s, "
        f"{CONCURRENT} at a time, in-process)"
    )

    problems: list[str] = []
    agreed = pending = 0
    for (key, person), response in zip(expected.items(), responses, strict=True):
        if response.status_code != 200:
            problems.append(
                f"{key} ({person['situation']}): {response.status_code} "
                f"{response.json().get('type')}"
            )
            continue
        popup = response.json()
        pending += popup["verdict_pending"]
        if diffs := disagreements(person, popup):
            problems.append(f"{key} ({person['situation']}): " + "; ".join(diffs))
        else:
            agreed += 1
    print(
        f"{agreed} of {len(expected)} popups agree with the ground truth "
        f"({100 * agreed / len(expected):.1f} %); {pending} verdicts pending"
    )
    # Not a vacuous agreement: the population shows every kind of popup.
    assert len(expected) == PEOPLE
    assert any(p["deceased"] for p in expected.values())
    assert any(p["flags"] for p in expected.values())
    assert any(p["needs_survey"] for p in expected.values())
    print("\n".join(problems[:40]))
    assert not problems, f"{len(problems)} of {len(expected)} popups disagree"
