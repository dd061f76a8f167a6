"""Every review step about one person (canbao_survey.person_steps): tasks with their submissions
and ledger rows, counter collections with theirs; names of items, never values; for the staff who
work on one person's registration only."""

from __future__ import annotations

from uuid import UUID, uuid4

import httpx

from canbao_platform.db import Database
from tests.conftest import caller_headers
from tests.survey.conftest import CLERK, COLLECTED, NEW_PERSON, PERSON, counter_collection

REGION = "520102"
PLATFORM, COUNTY, REVIEWER = "platform-wu", "county-chen", "reviewer-he"


def staff(username: str, role: str) -> dict[str, str]:
    return caller_headers("survey", username=username, role=role, scope="5201")


async def correct(survey: httpx.AsyncClient, phone: str, origin: str = "kiosk") -> str:
    """A citizen's self-service correction of the phone; its task_id."""
    response = await survey.post(
        "/internal/survey/corrections",
        headers=caller_headers("survey", username=f"{origin}:demo", role="self", scope="52"),
        json={
            "client_id": str(uuid4()),
            "person_id": str(PERSON),
            "region_code": REGION,
            "origin": origin,
            "items": {"phone": phone},
        },
    )
    assert response.status_code == 201, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def decide(
    survey: httpx.AsyncClient, task_id: str, stage: str, who: tuple[str, str], **body: str
) -> None:
    response = await survey.post(
        f"/internal/survey/tasks/{task_id}/{stage}", headers=staff(*who), json=body
    )
    assert response.status_code == 200, response.text


async def rechecked(survey: httpx.AsyncClient, collection_id: UUID, by: str) -> None:
    """A reviewer's 复核 of a counter collection (survey's own route)."""
    response = await survey.post(
        f"/internal/collections/{collection_id}/review",
        headers=staff(by, "reviewer"),
        json={"decision": "pass", "comment": "证件已核"},
    )
    assert response.status_code == 200, response.text


async def test_every_step_about_a_person_in_order(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    collected = await survey.post("/internal/collections", json=counter_collection())
    assert collected.status_code == 201, collected.text
    collection_id = UUID(collected.json()["collection_id"])
    await rechecked(survey, collection_id, REVIEWER)
    approved = await correct(survey, "13700001111")
    await decide(survey, approved, "review", (PLATFORM, "platform"), decision="pass")
    await decide(survey, approved, "approve", (COUNTY, "county"), decision="approve")
    returned = await correct(survey, "13700002222", origin="mobile")
    await decide(
        survey,
        returned,
        "review",
        (PLATFORM, "platform"),
        decision="reject",
        comment="号码与本人不符",
    )
    # Someone else's steps are not this person's.
    other = await survey.post("/internal/collections", json=counter_collection(person_id=uuid4()))
    assert other.status_code == 201

    response = await survey.get(
        f"/internal/survey/persons/{PERSON}/steps", headers=staff(REVIEWER, "reviewer")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    for value in (*COLLECTED.values(), "13700001111", "13700002222"):
        assert value not in response.text, "values never leave survey here"

    [collection] = body["collections"]
    assert collection["collection_id"] == str(collection_id)
    assert (collection["channel"], collection["handler"], sorted(collection["item_names"])) == (
        "counter",
        CLERK,
        sorted(COLLECTED),
    )
    ledger = [
        (d["stage"], d["decision"], d["decided_by"], d["comment"]) for d in collection["decisions"]
    ]
    assert ledger == [("recheck", "pass", REVIEWER, "证件已核")]

    first, second = body["tasks"]
    assert (first["task_id"], first["channel"], first["origin"], first["state"]) == (
        approved,
        "self",
        "kiosk",
        "approved",
    )
    [submission] = first["submissions"]
    assert (submission["submitted_by"], submission["channel"], submission["item_names"]) == (
        "kiosk:demo",
        "kiosk",
        ["phone"],
    )
    assert submission["collection_id"] is not None
    assert [(d["stage"], d["decision"], d["decided_by"]) for d in submission["decisions"]] == [
        ("review", "pass", PLATFORM),
        ("approve", "approve", COUNTY),
    ]
    [rejected] = second["submissions"]
    assert second["origin"] == "mobile" and rejected["state"] == "rejected"
    assert [(d["decision"], d["comment"]) for d in rejected["decisions"]] == [
        ("reject", "号码与本人不符")
    ]

    for role in ("counter", "platform", "county"):
        allowed = await survey.get(
            f"/internal/survey/persons/{PERSON}/steps", headers=staff("someone", role)
        )
        assert allowed.status_code == 200, role
    for role in ("surveyor", "analyst", "auditor", "city", "self"):
        refused = await survey.get(
            f"/internal/survey/persons/{PERSON}/steps", headers=staff("someone", role)
        )
        assert refused.status_code == 403, role


async def test_a_person_registered_by_a_collection_is_found_by_it(
    survey: httpx.AsyncClient,
) -> None:
    """A new registration names no person: identity, which registered them from the collection,
    names it."""
    new = await survey.post(
        "/internal/collections",
        json=counter_collection(NEW_PERSON, person_id=None, region_code=REGION),
    )
    assert new.status_code == 201, new.text
    registered = uuid4()  # the person_id identity gave them
    path = f"/internal/survey/persons/{registered}/steps"
    alone = (await survey.get(path, headers=staff(REVIEWER, "reviewer"))).json()
    assert alone == {"person_id": str(registered), "tasks": [], "collections": []}
    named = await survey.get(
        path,
        params={"collection_id": new.json()["collection_id"]},
        headers=staff(REVIEWER, "reviewer"),
    )
    assert [c["collection_id"] for c in named.json()["collections"]] == [
        new.json()["collection_id"]
    ]


async def test_a_merged_persons_steps_are_the_survivors(survey: httpx.AsyncClient) -> None:
    """One person registered twice: what was done under the retired person_id is named."""
    retired = PERSON
    task_id = await correct(survey, "13700003333")
    survivor = uuid4()
    path = f"/internal/survey/persons/{survivor}/steps"
    alone = (await survey.get(path, headers=staff(REVIEWER, "reviewer"))).json()
    assert alone["tasks"] == []
    merged = await survey.get(
        path, params={"merged": str(retired)}, headers=staff(REVIEWER, "reviewer")
    )
    assert [t["task_id"] for t in merged.json()["tasks"]] == [task_id]
