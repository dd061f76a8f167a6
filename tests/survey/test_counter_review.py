"""复核 of counter collections (41号 表4, 44号 Art.13) through survey's internal API, on real
PostgreSQL and the real broker: a reviewer, never the clerk who collected, passes a collection
(published once, with AAE011/AAE014) or returns it (published never); the ledger's trigger
refuses the maker and a second decision by itself; a reviewer outside the person's region is
refused; a day's batch passes contact details only, each on its own ledger row, and refuses the
rest per collection; the queue and a person's waiting values read back masked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from canbao_platform.db import Database
from canbao_platform.messaging.tables import outbox
from canbao_survey.tables import collections, decisions, subjects
from tests.conftest import caller_headers
from tests.survey.conftest import (
    CLERK,
    NEW_PERSON,
    PERSON,
    REVIEWER,
    Published,
    assert_problem,
    counter_collection,
    passed,
    reviewer,
)

SECOND = "reviewer-520102-02"
CONTACT = {"phone": "13812345678", "employment_status": "employed"}


async def submit(survey: httpx.AsyncClient, body: dict[str, Any] | None = None, **kw: Any) -> str:
    response = await survey.post("/internal/collections", json=body or counter_collection(), **kw)
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "submitted"
    collection_id: str = response.json()["collection_id"]
    return collection_id


async def review(
    survey: httpx.AsyncClient,
    collection_id: str,
    decision: str = "pass",
    *,
    by: str = REVIEWER,
    scope: str = "52",
    comment: str = "",
) -> httpx.Response:
    return await survey.post(
        f"/internal/collections/{collection_id}/review",
        json={"decision": decision, "comment": comment},
        headers=reviewer(by, scope),
    )


async def ledger(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = sa.select(decisions).order_by(decisions.c.decision_id)
        return [dict(r) for r in (await connection.execute(query)).mappings().all()]


async def row_of(database: Database, collection_id: str) -> dict[str, Any]:
    async with database.engine.connect() as connection:
        query = sa.select(collections).where(collections.c.collection_id == UUID(collection_id))
        return dict((await connection.execute(query)).mappings().one())


async def place(database: Database, person_id: UUID, region: str) -> None:
    """Survey's copy of identity's person (registry.persons): their region now."""
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.insert(subjects).values(
                person_id=person_id,
                region_code=region,
                household_registered=True,
                deceased=False,
                masked_name="王*",
                missing=[],
                inaccurate=[],
                in_scope=True,
                needs_survey=False,
                survey_reasons=[],
                statuses={},
            )
        )


async def test_a_pass_is_published_once_with_the_clerk_and_the_reviewer(
    survey: httpx.AsyncClient, survey_db: Database, published: Published
) -> None:
    collection_id = await submit(survey)
    response = await review(survey, collection_id, comment="证件已核")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["state"], answer["person_id"], answer["region_code"]) == (
        "approved",
        str(PERSON),
        "520102",
    )
    row = await row_of(survey_db, collection_id)
    assert (row["state"], row["handler"], row["reviewer"]) == ("approved", CLERK, REVIEWER)
    [entry] = await ledger(survey_db)
    assert (entry["submission_id"], entry["stage"], entry["decision"]) == (
        UUID(collection_id),
        "recheck",
        "pass",
    )
    assert (entry["decided_by"], entry["decided_at"]) == (REVIEWER, row["reviewed_at"])
    await published.until(lambda seen: bool(published.of(collection_id)))
    [event] = published.of(collection_id)
    assert (event.handler, event.handled_at) == (CLERK, row["handled_at"])  # AAE011, AAE036
    assert (event.reviewer, event.reviewed_at) == (REVIEWER, row["reviewed_at"])  # AAE014, 015

    # The same reviewer's same decision again (a retry): answered as recorded, nothing twice.
    again = await review(survey, collection_id)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["state"] == "approved"
    assert len(await ledger(survey_db)) == 1
    await published.read(timeout_ms=1500)
    assert len(published.of(collection_id)) == 1


async def test_the_clerk_may_not_review_their_own_collection(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    collection_id = await submit(survey)
    response = await review(survey, collection_id, by=CLERK)  # a clerk who is also a reviewer

    problem = assert_problem(response, 409, "maker-checker")
    assert "复核" in problem["detail"]
    assert (await row_of(survey_db, collection_id))["state"] == "submitted"
    assert await ledger(survey_db) == []


async def test_the_ledger_refuses_the_maker_and_a_second_decision_by_itself(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    """The trigger of survey_0004, below any application code: CBM01 for the clerk, CBM02 for
    a decision after the 复核 or a stage that is not a 复核, 23503 for an unknown id."""
    collection_id = UUID(await submit(survey))

    async def insert(decided_by: str, stage: str = "recheck", of: UUID = collection_id) -> str:
        try:
            async with survey_db.engine.begin() as connection:
                await connection.execute(
                    sa.insert(decisions).values(
                        submission_id=of,
                        stage=stage,
                        decision="pass",
                        decided_by=decided_by,
                        decided_at=datetime.now(UTC),
                        comment="",
                    )
                )
        except DBAPIError as error:
            return str(getattr(error.orig, "sqlstate", None) or error.orig.__cause__.sqlstate)  # type: ignore[union-attr]
        return "ok"

    assert await insert(CLERK) == "CBM01"
    assert await insert(REVIEWER, stage="review") == "CBM02"  # 初审 is the survey's
    assert await insert(REVIEWER, of=uuid4()) == "23503"
    assert await insert(REVIEWER) == "ok"
    assert await insert(SECOND) == "CBM02"  # one 复核, nothing after it
    assert await insert(REVIEWER) == "CBM01"  # nor twice by the same reviewer
    assert [e["decided_by"] for e in await ledger(survey_db)] == [REVIEWER]


async def test_a_returned_collection_says_why_and_is_never_published(
    survey: httpx.AsyncClient, survey_db: Database, published: Published
) -> None:
    collection_id = await submit(survey)
    unexplained = await review(survey, collection_id, "reject")
    assert_problem(unexplained, 422, "invalid-request")

    response = await review(survey, collection_id, "reject", comment="地址与居住证不符")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "rejected"
    row = await row_of(survey_db, collection_id)
    assert (row["state"], row["reviewer"]) == ("rejected", REVIEWER)
    [entry] = await ledger(survey_db)
    assert (entry["decision"], entry["comment"]) == ("reject", "地址与居住证不符")
    # The clerk reads it back, with the reviewer's comment.
    view = (await survey.get(f"/internal/collections/{collection_id}")).json()
    assert (view["state"], view["comment"]) == ("rejected", "地址与居住证不符")
    async with survey_db.engine.connect() as connection:
        assert (await connection.execute(sa.select(outbox))).first() is None
    await published.read(timeout_ms=1000)
    assert published.of(collection_id) == []


async def test_a_decision_on_a_decided_collection_is_a_conflict_saying_where_it_stands(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    collection_id = await submit(survey)
    await passed(survey, collection_id)

    for decision, by in (("reject", SECOND), ("pass", SECOND), ("reject", REVIEWER)):
        response = await review(survey, collection_id, decision, by=by, comment="重复")
        problem = assert_problem(response, 409, "collection-changed")
        assert problem["collection"]["state"] == "approved"
        assert problem["collection"]["reviewer"] == REVIEWER
    assert len(await ledger(survey_db)) == 1


async def test_two_reviewers_at_once_one_decides_the_other_hears_it_changed(
    survey: httpx.AsyncClient, survey_db: Database, published: Published
) -> None:
    collection_id = await submit(survey)
    answers = await asyncio.gather(
        review(survey, collection_id, by=REVIEWER), review(survey, collection_id, by=SECOND)
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    [lost] = [a for a in answers if a.status_code == 409]
    assert lost.json()["type"] == "/problems/collection-changed"
    assert len(await ledger(survey_db)) == 1
    await published.until(lambda seen: bool(published.of(collection_id)))
    await published.read(timeout_ms=1000)
    assert len(published.of(collection_id)) == 1


async def test_a_reviewer_outside_the_persons_region_is_refused(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    """The person's region as identity last said (survey's subjects) goes first: a person who
    moved from Nanming (where the clerk placed them) to Zunyi is Zunyi's reviewers'."""
    collection_id = await submit(survey)
    zunyi = await review(survey, collection_id, by=SECOND, scope="5203")
    assert assert_problem(zunyi, 403, "out-of-scope")["region_code"] == "520102"

    await place(survey_db, PERSON, "520302")
    guiyang = await review(survey, collection_id, by=SECOND, scope="5201")
    assert assert_problem(guiyang, 403, "out-of-scope")["region_code"] == "520302"
    assert (await review(survey, collection_id, by=SECOND, scope="5203")).status_code == 200


async def test_only_a_reviewer_decides(survey: httpx.AsyncClient, survey_db: Database) -> None:
    collection_id = await submit(survey)
    for role in ("counter", "platform", "county"):
        response = await survey.post(
            f"/internal/collections/{collection_id}/review",
            json={"decision": "pass"},
            headers=caller_headers("survey", username="x", role=role),
        )
        assert_problem(response, 403, "caller-not-allowed")
    assert_problem(await review(survey, str(uuid4())), 404, "collection-not-found")
    assert await ledger(survey_db) == []


async def test_a_days_batch_passes_contact_details_and_refuses_the_rest_one_by_one(
    survey: httpx.AsyncClient, survey_db: Database, published: Published
) -> None:
    contact = await submit(survey, counter_collection(CONTACT, resolved_reasons=["missing_info"]))
    address = await submit(survey, counter_collection({"residence_address": "云岩区1号"}))
    named = await submit(survey, counter_collection({"name": "王伟", "phone": "13900000000"}))
    new = await submit(survey, counter_collection(NEW_PERSON, person_id=None))
    moved = await submit(survey, counter_collection(CONTACT, region_code="520302"))
    own = await submit(
        survey,
        counter_collection({"phone": "13700000000"}),
        headers=caller_headers("survey", username=REVIEWER),
    )
    unknown = str(uuid4())
    ids = [contact, named, new, address, moved, own, unknown, contact]  # one twice

    response = await survey.post(
        "/internal/collections/review-batch",
        json={"collection_ids": ids, "comment": "当日批量复核"},
        headers=reviewer(),
    )

    assert response.status_code == 200, response.text
    batch = response.json()
    results = {r["collection_id"]: r for r in batch["results"]}
    assert [r["collection_id"] for r in batch["results"]] == ids[:-1]  # once each, in order
    assert (batch["passed"], batch["refused"]) == (2, 5)
    assert results[contact]["result"] == results[address]["result"] == "passed"
    assert results[contact]["state"] == "approved" and results[contact]["person_id"] == str(PERSON)
    refusals = {
        i: (r["problem"]["type"], r["problem"].get("items"))
        for i, r in results.items()
        if r["result"] == "refused"
    }
    assert refusals == {
        named: ("/problems/needs-individual-review", ["name"]),
        new: (
            "/problems/needs-individual-review",
            ["name", "gender", "id_number", "birth_date", "household_place", "new_registration"],
        ),
        moved: ("/problems/needs-individual-review", ["region_code"]),
        own: ("/problems/maker-checker", None),
        unknown: ("/problems/collection-not-found", None),
    }
    assert "姓名" in results[named]["problem"]["detail"]
    entries = await ledger(survey_db)
    assert sorted(str(e["submission_id"]) for e in entries) == sorted([contact, address])
    assert {e["comment"] for e in entries} == {"当日批量复核"}
    for refused in (named, new, moved, own):
        assert (await row_of(survey_db, refused))["state"] == "submitted"
    await published.until(lambda seen: bool(published.of(contact) and published.of(address)))
    await published.read(timeout_ms=1000)
    assert [len(published.of(i)) for i in (contact, address, named, new, moved, own)] == [
        1,
        1,
        0,
        0,
        0,
        0,
    ]

    # The batch again (a retry): what this reviewer passed is answered as passed, nothing twice.
    again = await survey.post(
        "/internal/collections/review-batch",
        json={"collection_ids": [contact, named]},
        headers=reviewer(),
    )
    [first, second] = again.json()["results"]
    assert (first["result"], first["replayed"], second["result"]) == ("passed", True, "refused")
    assert len(await ledger(survey_db)) == 2
    # An identity item is then passed on its own.
    assert (await review(survey, named)).json()["state"] == "approved"


async def test_a_batch_is_bounded_and_only_for_reviewers(survey: httpx.AsyncClient) -> None:
    too_many = {"collection_ids": [str(uuid4()) for _ in range(201)]}
    path = "/internal/collections/review-batch"
    assert_problem(
        await survey.post(path, json=too_many, headers=reviewer()), 422, "invalid-request"
    )
    assert_problem(
        await survey.post(path, json={"collection_ids": []}, headers=reviewer()),
        422,
        "invalid-request",
    )
    clerk = await survey.post(path, json={"collection_ids": [str(uuid4())]})
    assert_problem(clerk, 403, "caller-not-allowed")


async def test_the_queue_is_filtered_masked_and_paged(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    other_clerk = caller_headers("survey", username="clerk-2")
    first = await submit(survey, counter_collection(CONTACT))
    second = await submit(survey, counter_collection({"name": "王伟"}))
    third = await submit(survey, counter_collection(CONTACT), headers=other_clerk)
    zunyi = await submit(
        survey, counter_collection(CONTACT, person_id=uuid4(), person_region="520302")
    )
    decided = await submit(survey, counter_collection(CONTACT))
    await passed(survey, decided)

    async def queue(scope: str = "52", **params: Any) -> dict[str, Any]:
        response = await survey.get(
            "/internal/collections", params=params, headers=reviewer(scope=scope)
        )
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    def ids(page: dict[str, Any]) -> list[str]:
        return [item["collection_id"] for item in page["items"]]

    assert ids(await queue()) == [first, second, third, zunyi]  # waiting, oldest first
    assert ids(await queue(region="5201")) == [first, second, third]
    assert ids(await queue(scope="5203")) == [zunyi]
    assert ids(await queue(handler="clerk-2")) == [third]
    assert ids(await queue(state="approved")) == [decided]
    in_china = (datetime.now(UTC) + timedelta(hours=8)).date()  # the counter's working day
    assert len(ids(await queue(date=in_china.isoformat()))) == 4
    assert ids(await queue(date=(in_china - timedelta(days=1)).isoformat())) == []

    page1 = await queue(limit=3)
    assert ids(page1) == [first, second, third] and page1["next"]
    page2 = await queue(limit=3, cursor=page1["next"])
    assert ids(page2) == [zunyi] and page2["next"] is None

    item = (await queue(limit=1))["items"][0]
    assert (item["risk"], item["handler"], item["state"]) == ("contact", CLERK, "submitted")
    values = {i["item"]: i["value"] for i in item["items"]}
    assert values["phone"] != CONTACT["phone"] and values["phone"].endswith("5678")
    assert (await queue(limit=2))["items"][1]["risk"] == "identity"

    bad = await survey.get(
        "/internal/collections", params={"cursor": "nonsense"}, headers=reviewer()
    )
    assert_problem(bad, 422, "invalid-cursor")
    outside = await survey.get(
        "/internal/collections", params={"region": "5301"}, headers=reviewer(scope="5201")
    )
    assert_problem(outside, 403, "out-of-scope")
    assert_problem(await survey.get("/internal/collections"), 403, "caller-not-allowed")


async def test_one_collection_is_read_by_its_clerk_and_by_the_reviewers_of_its_region(
    survey: httpx.AsyncClient,
) -> None:
    collection_id = await submit(survey)
    path = f"/internal/collections/{collection_id}"
    assert (await survey.get(path)).json()["risk"] == "contact"
    assert (await survey.get(path, headers=reviewer())).status_code == 200
    assert_problem(await survey.get(path, headers=reviewer(scope="5203")), 403, "out-of-scope")
    other = caller_headers("survey", username="clerk-2")
    assert_problem(await survey.get(path, headers=other), 403, "caller-not-allowed")


async def test_a_persons_waiting_values_for_the_popup(survey: httpx.AsyncClient) -> None:
    first = await submit(survey, counter_collection(CONTACT))
    second = await submit(survey, counter_collection({"residence_address": "云岩区中华北路1号"}))
    path = f"/internal/persons/{PERSON}/collections"

    response = await survey.get(path)

    assert response.status_code == 200, response.text
    pending = response.json()["pending"]
    assert [(p["item"], p["collection_id"], p["state"]) for p in pending] == [
        ("phone", first, "submitted"),
        ("employment_status", first, "submitted"),
        ("residence_address", second, "submitted"),
    ]
    assert pending[0]["code"] == "AAE005" and pending[0]["label"] == "联系电话"
    assert CONTACT["phone"] not in response.text and "中华北路1号" not in response.text
    assert pending[0]["submitted_at"]
    await passed(survey, first)
    left = (await survey.get(path)).json()["pending"]
    assert [p["collection_id"] for p in left] == [second]
    analyst = caller_headers("survey", username="a", role="analyst")
    assert_problem(await survey.get(path, headers=analyst), 403, "caller-not-allowed")


@pytest.mark.parametrize("scope", ["5203", "520302001"])
async def test_a_persons_waiting_values_are_refused_outside_their_region(
    survey: httpx.AsyncClient, survey_db: Database, scope: str
) -> None:
    await place(survey_db, PERSON, "520102")
    response = await survey.get(
        f"/internal/persons/{PERSON}/collections",
        headers=caller_headers("survey", username="c", role="counter", scope=scope),
    )
    assert_problem(response, 403, "out-of-scope")
    township = caller_headers("survey", username="c", role="counter", scope="520102003")
    answer = await survey.get(f"/internal/persons/{PERSON}/collections", headers=township)
    assert answer.status_code == 200  # a township's counter serves its county's people
