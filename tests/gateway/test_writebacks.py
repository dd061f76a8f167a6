"""`GET /api/v1/writebacks` (writeback_routes.py): the agency's list of write-backs to the
business systems, identity running for real behind the gateway: masked, filtered by state
(`overdue`: pending for longer than 30 days), system and region, refusals with their reason,
audited per page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from canbao_contracts.events import FeedbackOutcome, FeedbackReplied
from canbao_gateway.staff import Role
from canbao_identity.tables import writebacks
from canbao_platform.db import Database
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.services import gateway_over, identity_app
from tests.gateway.test_authorisation import audit_rows
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_writeback import (
    AFTER,
    answer,
    card,
    collected,
    reply_message,
    requests,
)

BEIJING = "110101"  # tests/identity/test_writeback.py's person lives in Dongcheng


async def test_the_county_lists_what_waits_for_the_business_systems(
    gateway_url: str,
    gateway_db: Database,
    test_clock: Clock,
    token_for: Callable[..., str],
    harness: Harness,
) -> None:
    person_id, collection_id = await collected(harness)
    token = bearer(token_for(Role.COUNTY, scope="11"))
    async for client in gateway_over(gateway_url, test_clock, identity=identity_app(harness)):
        response = await client.get("/api/v1/writebacks", headers=token)
        assert response.status_code == 200, response.text
        (item,) = response.json()["items"]
        assert item["person_id"] == str(person_id)
        assert item["collection_id"] == str(collection_id)
        assert (item["system"], item["item"], item["column"]) == ("si_core", "phone", "aae005")
        assert (item["state"], item["overdue"], item["reason"]) == ("pending", False, None)
        assert item["masked_name"] == "王*" and "masked_id_number" not in item
        assert "13912345678" not in response.text and "王伟" not in response.text

        # A month and more later, still pending: the disagreement that lasts.
        async with harness.db.engine.begin() as connection:
            await connection.execute(
                sa.update(writebacks).values(
                    requested_at=writebacks.c.requested_at - timedelta(days=31)
                )
            )
        overdue = await client.get("/api/v1/writebacks?state=overdue", headers=token)
        assert [i["overdue"] for i in overdue.json()["items"]] == [True]
        # The card system already had the collected phone: nothing was asked of it.
        of_card = await client.get("/api/v1/writebacks?system=card", headers=token)
        assert of_card.json()["items"] == []

        (request,) = requests(harness)
        refusal = FeedbackReplied(
            feedback_id=request.feedback_id,
            system="si_core",
            outcome=FeedbackOutcome.REFUSED,
            reason="该人员已转出本统筹区",
            replied_at=AFTER,
        )
        await answer(harness, reply_message(refusal))
        refused = await client.get("/api/v1/writebacks?state=refused", headers=token)
        assert [(i["state"], i["reason"]) for i in refused.json()["items"]] == [
            ("refused", "该人员已转出本统筹区")
        ]
        assert (await client.get("/api/v1/writebacks?state=overdue", headers=token)).json()[
            "items"
        ] == []

        # Another region's staff see none of it, and may not ask for this one.
        guizhou = bearer(token_for(Role.REVIEWER, scope="52"))
        assert (await client.get("/api/v1/writebacks", headers=guizhou)).json()["items"] == []
        outside = await client.get(f"/api/v1/writebacks?region={BEIJING}", headers=guizhou)
        assert_problem(outside, 403, "out-of-scope")
    rows = await audit_rows(gateway_db)
    assert [(r["outcome"], r["person_region"]) for r in rows] == [
        ("ok", "11"),
        ("ok", "11"),
        ("ok", "11"),
        ("ok", "11"),
        ("ok", "11"),
        ("ok", "52"),
        ("out_of_scope", BEIJING),
    ]


async def test_the_list_comes_a_page_at_a_time(
    gateway_url: str,
    test_clock: Clock,
    token_for: Callable[..., str],
    harness: Harness,
) -> None:
    await collected(harness)
    # The card system's record, of before the approval, arrives late and says another phone.
    await harness.apply([card(phone="13800000001")])  # si_core and card disagree: two requests
    token = bearer(token_for(Role.REVIEWER, scope=BEIJING))
    async for client in gateway_over(gateway_url, test_clock, identity=identity_app(harness)):
        first = (await client.get("/api/v1/writebacks?limit=1", headers=token)).json()
        assert len(first["items"]) == 1 and first["next_cursor"]
        url = f"/api/v1/writebacks?limit=1&cursor={first['next_cursor']}"
        second = (await client.get(url, headers=token)).json()
        assert len(second["items"]) == 1 and second["next_cursor"] is None
        assert {first["items"][0]["system"], second["items"][0]["system"]} == {"si_core", "card"}
        bad = await client.get("/api/v1/writebacks?cursor=nonsense", headers=token)
        assert_problem(bad, 422, "invalid-cursor")
