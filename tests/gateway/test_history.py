"""`GET /api/v1/persons/{id_number}/history`: identity's change history and survey's review steps
of one person through the gateway, identity and survey running for real behind it
(tests/gateway/services.py): masked for every role that reads it, scoped, audited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from canbao_contracts.codes import RegistrationItem
from canbao_contracts.events import CollectionApproved
from canbao_contracts.events.vocabulary import Channel
from canbao_gateway import history_routes
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_identity.handlers import collection_change
from canbao_identity.staging import add_staged
from canbao_platform.db import Database
from canbao_platform.messaging import unit_of_work
from tests.conftest import caller_headers
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.people import NANMING, YUNYAN, ZUNYI_HONGHUAGANG, citizen
from tests.gateway.services import collections_kafka as collections_kafka
from tests.gateway.services import gateway_over, hukou, identity_app
from tests.identity.conftest import Harness, change
from tests.identity.conftest import harness as harness  # identity's and survey's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_registry import ac01
from tests.survey.conftest import survey_app as survey_app
from tests.survey.conftest import survey_url as survey_url

# Born in Zunyi, living in Nanming: Nanming's person.
WANG = citizen(ZUNYI_HONGHUAGANG, "19800101", "011")
UNKNOWN = citizen(NANMING, "19700707", "041")
HISTORY = "/api/v1/persons/{}/history"
ROLES = (Role.COUNTER, Role.REVIEWER, Role.PLATFORM, Role.COUNTY)
CLEAR = ("13800138000", "13600136000", "13900139000", "13700001111", "王伟", WANG)


@pytest.fixture
async def gateway(
    gateway_url: str, test_clock: Clock, harness: Harness, survey_app: FastAPI
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in gateway_over(
        gateway_url, test_clock, identity=identity_app(harness), survey=survey_app
    ):
        yield client


@pytest.fixture
async def wang(harness: Harness, survey_app: FastAPI, gateway: httpx.AsyncClient) -> UUID:
    """Wang registered from the household register and the insurance system; his phone changed
    there; a clerk collected a new one, which identity applied; a kiosk correction was returned
    at 初审."""
    await harness.apply([hukou(WANG, NANMING), change("si_core.ac01", ac01(WANG, aab301=NANMING))])
    await harness.apply([change("si_core.ac01", ac01(WANG, aab301=NANMING, aae005="13600136000"))])
    person_id = await harness.person_of(WANG)
    assert person_id is not None
    transport = httpx.ASGITransport(app=survey_app)  # running behind the gateway
    async with httpx.AsyncClient(transport=transport, base_url="http://survey") as survey:
        collected = await survey.post(
            "/internal/collections",
            headers=caller_headers("survey", username="clerk-07", role="counter"),
            json={
                "person_id": str(person_id),
                "person_region": NANMING,
                "items": {"phone": "13900139000"},
            },
        )
        assert collected.status_code == 201, collected.text
        rechecked = await survey.post(
            f"/internal/collections/{collected.json()['collection_id']}/review",
            headers=caller_headers(
                "survey", username="reviewer-01", role="reviewer", scope=NANMING
            ),
            json={"decision": "pass"},
        )
        assert rechecked.status_code == 200, rechecked.text
        correction = await survey.post(
            "/internal/survey/corrections",
            headers=caller_headers("survey", username="kiosk:k1", role="self"),
            json={
                "client_id": str(uuid4()),
                "person_id": str(person_id),
                "region_code": NANMING,
                "origin": "kiosk",
                "items": {"phone": "13700001111"},
            },
        )
        assert correction.status_code == 201, correction.text
        reviewed = await survey.post(
            f"/internal/survey/tasks/{correction.json()['task_id']}/review",
            headers=caller_headers(
                "survey", username="platform-wu", role="platform", scope=NANMING
            ),
            json={"decision": "reject", "comment": "号码无法接通"},
        )
        assert reviewed.status_code == 200, reviewed.text
    # registry.collections as identity consumes it (no broker between them here).
    now = datetime.now(UTC)
    event = CollectionApproved(
        collection_id=UUID(collected.json()["collection_id"]),
        person_id=person_id,
        channel=Channel.COUNTER,
        items={RegistrationItem.PHONE: "13900139000"},
        handler="clerk-07",
        handled_at=now,
        reviewer="reviewer-01",
        reviewed_at=now,
    )
    async with unit_of_work(harness.db, service="identity") as uow:
        add_staged(uow, collection_change(harness.protector, event))
    await harness.drain()
    return person_id


async def audit_rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        return [dict(r) for r in (await connection.execute(query)).mappings().all()]


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_the_history_shows_every_change_and_step_masked(
    wang: UUID,
    gateway: httpx.AsyncClient,
    gateway_db: Database,
    token_for: Callable[..., str],
    role: Role,
) -> None:
    headers = bearer(token_for(role, scope=NANMING, username=f"{role.value}-1"))
    response = await gateway.get(HISTORY.format(WANG), headers=headers)

    assert response.status_code == 200, response.text
    assert not [value for value in CLEAR if value in response.text], "masked for every role"
    body = response.json()
    assert body["person_id"] == str(wang)
    assert body["id_number"] == WANG[:4] + "*" * 10 + WANG[-4:] and body["name"] == "王*"
    changes = [
        (
            c["kind"],
            c["label"],
            c["old"],
            c["new"],
            c["source_label"],
            c["channel"],
            c["handler"],
            c["reviewer"],
        )
        for c in body["changes"]
    ]
    assert changes == [
        (
            "value",
            "联系电话",
            "136****6000",
            "139****9000",
            "信息采集",
            "counter",
            "clerk-07",
            "reviewer-01",
        ),
        ("value", "联系电话", "138****8000", "136****6000", "社保系统", None, None, None),
        ("registered", "首次登记", None, None, "户籍", None, None, None),
    ]
    assert body["changes"][0]["channel_label"] == "业务经办窗口"
    steps = [(s["kind"], s["label"], s["by"], s["comment"]) for s in body["steps"]]
    assert steps == [
        ("review", "初审退回", "platform-wu", "号码无法接通"),
        ("submit", "提交（自助一体机）", "kiosk:k1", None),
        ("recheck", "复核通过", "reviewer-01", None),
        ("submit", "提交（业务经办窗口）", "clerk-07", None),
    ]
    assert body["steps"][-1]["collection_id"] == body["changes"][0]["collection_id"]
    assert body["steps"][1]["items"] == ["phone"] and body["steps"][0]["task_id"]
    assert body["next_cursor"] is None

    [row] = await audit_rows(gateway_db)
    assert (row["purpose"], row["outcome"], row["person_id"], row["role"]) == (
        "change_history",
        "ok",
        wang,
        role.value,
    )


async def test_outside_the_region_or_unknown_is_refused_and_audited(
    wang: UUID, gateway: httpx.AsyncClient, gateway_db: Database, token_for: Callable[..., str]
) -> None:
    elsewhere = bearer(token_for(Role.REVIEWER, scope=YUNYAN))
    assert_problem(await gateway.get(HISTORY.format(WANG), headers=elsewhere), 403, "out-of-scope")
    own = bearer(token_for(Role.REVIEWER, scope=NANMING))
    assert_problem(await gateway.get(HISTORY.format(UNKNOWN), headers=own), 404, "not-registered")
    analyst = bearer(token_for(Role.ANALYST, scope=NANMING))
    assert_problem(
        await gateway.get(HISTORY.format(WANG), headers=analyst), 403, "role-not-allowed"
    )
    rows = await audit_rows(gateway_db)
    assert [(r["purpose"], r["outcome"]) for r in rows] == [
        ("change_history", "out_of_scope"),
        ("change_history", "not_found"),
    ]
    assert rows[0]["person_id"] == wang


async def test_the_changes_come_page_by_page(
    wang: UUID,
    harness: Harness,
    gateway: httpx.AsyncClient,
    token_for: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(3):  # the address from the insurance system (the phone is the clerk's now)
        address = f"贵州省贵阳市南明区花果园{n}号"
        await harness.apply([change("si_core.ac01", ac01(WANG, aab301=NANMING, aae006=address))])
    monkeypatch.setattr(history_routes, "PAGE", 4)  # identity's page, shorter than 6 changes
    headers = bearer(token_for(Role.COUNTY, scope=NANMING))
    first = (await gateway.get(HISTORY.format(WANG), headers=headers)).json()
    second = (
        await gateway.get(
            HISTORY.format(WANG), headers=headers, params={"cursor": first["next_cursor"]}
        )
    ).json()
    assert len(first["changes"]) == 4 and first["steps"]
    assert [c["item"] for c in first["changes"]] == ["residence_address"] * 3 + ["phone"]
    assert [c["kind"] for c in second["changes"]] == ["value", "registered"]
    assert second["steps"] == [] and second["next_cursor"] is None
    empty = await gateway.get(HISTORY.format(WANG), headers=headers, params={"cursor": ""})
    assert empty.json() == first, "an empty cursor is the first page"
    bad = await gateway.get(HISTORY.format(WANG), headers=headers, params={"cursor": "x"})
    assert_problem(bad, 422, "invalid-cursor")


async def test_a_person_merged_into_another_brings_their_history(
    wang: UUID,
    harness: Harness,
    survey_app: FastAPI,
    gateway: httpx.AsyncClient,
    token_for: Callable[..., str],
) -> None:
    """Wang also registered by passport (one person, two numbers), with a kiosk correction
    under that person_id; a clerk merges the two."""
    await harness.apply(
        [
            change(
                "medical.insured",
                {
                    "psn_no": "M7",
                    "certno": "E12345678",
                    "psn_cert_type": "02",
                    "psn_name": "王伟",
                    "gend": "1",
                    "brdy": datetime(1980, 1, 1).date(),
                    "insutype": "390",
                    "psn_insu_stas": "1",
                },
            )
        ]
    )
    twin = await harness.person_of("E12345678", "02")
    assert twin is not None and twin != wang
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=survey_app), base_url="http://survey"
    ) as survey:
        correction = await survey.post(
            "/internal/survey/corrections",
            headers=caller_headers("survey", username="mobile:m1", role="self"),
            json={
                "client_id": str(uuid4()),
                "person_id": str(twin),
                "region_code": NANMING,
                "origin": "mobile",
                "items": {"phone": "13700004444"},
            },
        )
        assert correction.status_code == 201, correction.text
    async with harness.work(linking=True) as registry:
        await registry.merge(twin, wang)

    headers = bearer(token_for(Role.COUNTER, scope=NANMING))
    body = (await gateway.get(HISTORY.format(WANG), headers=headers)).json()
    assert ("absorbed", "合并另一人员记录") in [(c["kind"], c["label"]) for c in body["changes"]]
    assert ("merged", "并入另一人员记录") in [(c["kind"], c["label"]) for c in body["changes"]]
    assert [s["task_id"] for s in body["steps"] if s["channel"] == "mobile"] == [
        correction.json()["task_id"]
    ]
