"""Changes and their review on the real local stack (`make run` on a fresh state directory, 300
people), through the public API as the demo accounts, with the business systems' side played by
plain SQL on the simulators and plain Kafka on the feedback topics (sources.md, architecture.md
"The registry talks back"):

* 复核 (41号 表4, 44号 Art.13): demo-counter corrects a person's phone, which waits in the popup
  as pending; the clerk cannot pass it; demo-reviewer does, and the popup stops asking.
* Write-back (44号 Art.22): the core insurance system, whose record still holds the old phone,
  is asked on `feedback.si_core` with what changed and who approved; once its table holds the
  same value the write-back is applied (the source has taken over again). A second change it
  refuses on `feedback.si_core.replies` is listed for the agency with the system's reason.
* 变更登记 (44号 Art.21): demo-platform looks the person up and records an address change with
  the documents seen; it cannot 初审 its own record, demo-platform2 does, demo-county 审定s.
* A self-service correction (a kiosk's, api.md "Self-service") enters the same queue: 初审,
  审定. The kiosk's session is tests/stack/test_self_service.py's; here the correction reaches
  survey's internal route with a service token as the gateway would sign it for the kiosk.
* 抽查 (Chongqing plan 四(二)): demo-city draws a sample of the city's approved records of the
  day, re-checks each once (one is wrong) and reads the error rate per county and per maker.
* The person's history (44号 Art.20) shows the change with its clerk and reviewer, and every
  step (提交, 复核, 初审, 审定).

The person is chosen from the generator's ground truth (someone whose core-system phone is
malformed, so the popup asks for it); everything else is the API's."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from canbao_contracts.envelope import decode, encode
from canbao_contracts.events.feedback import FeedbackOutcome, FeedbackReplied, FeedbackRequested
from tests.conftest import caller_headers
from tests.stack.test_local_stack import fresh_stack
from tests.stack.test_survey_campaign import Timings, log_in, problem

CHINA = ZoneInfo("Asia/Shanghai")  # the sample's days are China's
COLLECTIONS = "/api/v1/counter/collections"
POPUP = "/api/v1/counter/popup/"
WITHIN_S = 150
NEW_PHONE = "13955550123"
LATER_PHONE = "13955550456"  # the person changes their phone again a year later
NEW_ADDRESS = "贵州省贵阳市南明区花果园街道12号"
KIOSK_PHONE = "13955550789"
SURVEY = "/api/v1/survey"


async def person_with_a_bad_phone(sources: str) -> tuple[str, str]:
    """A living, in-scope person whose core-system (si_core.ac01) phone the ground truth calls
    inaccurate: their ID number and their ac01 person number (AAC001)."""
    connection = await asyncpg.connect(sources)
    try:
        row = await connection.fetchrow(
            "SELECT e.id_number, p.aac001 FROM simulator.expected_outcome e "
            "JOIN si_core.ac01 p ON upper(trim(p.aac002)) = e.id_number "
            "WHERE e.in_scope AND NOT e.deceased AND e.inaccurate @> $1::jsonb "
            "AND NOT e.inaccurate @> $2::jsonb AND e.missing = '[]'::jsonb "
            "AND (SELECT count(*) FROM si_core.ac01 q WHERE q.aac002 = p.aac002) = 1 "
            "ORDER BY e.id_number LIMIT 1",
            json.dumps([{"item": "phone", "source": "si_core.ac01"}]),
            json.dumps([{"item": "name"}]),
        )
    finally:
        await connection.close()
    assert row is not None, "the demo population has nobody with a malformed core-system phone"
    return row["id_number"], row["aac001"]


async def popup_until(
    counter: httpx.AsyncClient, number: str, done: Any, what: str
) -> dict[str, Any]:
    deadline, popup = time.monotonic() + WITHIN_S, {}
    while time.monotonic() < deadline:
        response = await counter.get(POPUP + number)
        popup = response.json()
        if response.status_code == 200 and done(popup):
            return dict(popup)
        await asyncio.sleep(1)
    raise AssertionError(f"the popup never showed {what}: {popup}")


async def writeback_until(
    county: httpx.AsyncClient, collection_id: str, state: str
) -> dict[str, Any]:
    deadline, seen = time.monotonic() + WITHIN_S, []
    while time.monotonic() < deadline:
        page = await county.get("/api/v1/writebacks", params={"system": "si_core", "limit": 200})
        assert page.status_code == 200, page.text
        seen = [w for w in page.json()["items"] if w["collection_id"] == collection_id]
        if any(w["state"] == state for w in seen):
            return next(w for w in seen if w["state"] == state)
        await asyncio.sleep(1)
    raise AssertionError(f"no {state} write-back of {collection_id}: {seen}")


async def feedback_for(bootstrap: str, collection_id: str) -> FeedbackRequested:
    """The request on feedback.si_core for the collection, as the core system reads it."""
    consumer = AIOKafkaConsumer(
        "feedback.si_core",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"si-core-test-{uuid4()}",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + WITHIN_S
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for message in (m for messages in batches.values() for m in messages):
                _, event = decode(message.headers, message.value)
                if isinstance(event, FeedbackRequested) and str(event.collection_id) == (
                    collection_id
                ):
                    return event
    finally:
        await consumer.stop()
    raise AssertionError(f"no FeedbackRequested for {collection_id} on feedback.si_core")


async def collect_and_pass(
    counter: httpx.AsyncClient,
    reviewer: httpx.AsyncClient,
    number: str,
    person_id: str,
    items: dict[str, str],
) -> str:
    saved = await counter.post(
        COLLECTIONS, json={"id_number": number, "person_id": person_id, "items": items}
    )
    assert saved.status_code == 201 and saved.json()["state"] == "submitted", saved.text
    collection_id: str = saved.json()["collection_id"]
    passed = await reviewer.post(
        f"{COLLECTIONS}/{collection_id}/review", json={"decision": "pass", "comment": "证件已核"}
    )
    assert passed.json()["state"] == "approved", passed.text
    return collection_id


async def first_reviewed_and_approved(
    first: httpx.AsyncClient, county: httpx.AsyncClient, task: str
) -> None:
    reviewed = await first.post(f"{task}/review", json={"decision": "pass", "comment": "材料齐全"})
    assert reviewed.json()["state"] == "first_reviewed", reviewed.text
    approved = await county.post(f"{task}/approve", json={"decision": "approve"})
    assert approved.json()["state"] == "approved", approved.text


async def changes(gateway: str, sources: str, bootstrap: str, timings: Timings) -> None:
    number, aac001 = await person_with_a_bad_phone(sources)
    counter, reviewer, county = [
        await log_in(gateway, f"demo-{who}") for who in ("counter", "reviewer", "county")
    ]
    before = await popup_until(
        counter,
        number,
        lambda p: "phone" in {i["item"] for i in p["inaccurate"]},
        "the malformed phone as inaccurate",
    )
    person_id = before["person_id"]
    timings.mark("the popup asks to correct the phone")

    # 复核: saved as submitted, pending in the popup, not passed by the clerk who made it.
    saved = await counter.post(
        COLLECTIONS,
        json={"id_number": number, "person_id": person_id, "items": {"phone": NEW_PHONE}},
    )
    assert saved.status_code == 201 and saved.json()["state"] == "submitted", saved.text
    phone_change = saved.json()["collection_id"]
    popup = (await counter.get(POPUP + number)).json()
    [pending] = popup["pending"]
    assert (pending["item"], pending["state"], pending["collection_id"]) == (
        "phone",
        "submitted",
        phone_change,
    )
    assert NEW_PHONE not in json.dumps(popup) and pending["value"].endswith(NEW_PHONE[-4:])
    path = f"{COLLECTIONS}/{phone_change}/review"
    problem(await counter.post(path, json={"decision": "pass"}), 403, "role-not-allowed")
    queue = (await reviewer.get(COLLECTIONS, params={"state": "submitted"})).json()
    assert phone_change in {c["collection_id"] for c in queue["items"]}, queue
    passed = await reviewer.post(path, json={"decision": "pass", "comment": "证件已核"})
    assert passed.json()["state"] == "approved", passed.text
    problem(
        await reviewer.post(path, json={"decision": "reject", "comment": "号码有误"}),
        409,
        "collection-changed",
    )
    await popup_until(
        counter,
        number,
        lambda p: not p["pending"] and "phone" not in {i["item"] for i in p["inaccurate"]},
        "the reviewed phone applied",
    )
    timings.mark("复核 by demo-reviewer; the popup no longer asks for the phone")

    # Write-back: the core system is asked, with the evidence; its record then agrees.
    request = await feedback_for(bootstrap, phone_change)
    assert (request.handler, request.reviewer, request.channel.value) == (
        "demo-counter",
        "demo-reviewer",
        "counter",
    )
    assert [(c.item.value, c.column, c.value) for c in request.changes] == [
        ("phone", "aae005", NEW_PHONE)
    ]
    assert aac001 in request.record_key, request.record_key
    pending_writeback = await writeback_until(county, phone_change, "pending")
    assert pending_writeback["person_id"] == person_id
    region = pending_writeback["region_code"]  # the person's county
    timings.mark("feedback.si_core asked to write the phone back; listed as pending")
    connection = await asyncpg.connect(sources)
    try:
        await connection.execute(
            "UPDATE si_core.ac01 SET aae005 = $1, updated_at = now() WHERE aac001 = $2",
            NEW_PHONE,
            aac001,
        )
    finally:
        await connection.close()
    await writeback_until(county, phone_change, "applied")
    timings.mark("si_core.ac01 now holds the phone: the write-back is applied")

    # A change the core system cannot apply: it answers with a reason; the agency sees it.
    later_change = await collect_and_pass(
        counter, reviewer, number, person_id, {"phone": LATER_PHONE}
    )
    refused = await feedback_for(bootstrap, later_change)
    reply = encode(
        FeedbackReplied(
            feedback_id=refused.feedback_id,
            system=refused.system,
            outcome=FeedbackOutcome.REFUSED,
            reason="该人员已办理转移，档案已封存",
            replied_at=datetime.now(UTC),
        ),
        source="si_core",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(reply.topic, reply.value, key=reply.key, headers=reply.headers)
    finally:
        await producer.stop()
    listed = await writeback_until(county, later_change, "refused")
    assert listed["reason"] == "该人员已办理转移，档案已封存", listed
    timings.mark("a refusal on feedback.si_core.replies is listed with the system's reason")

    # 变更登记 at the platform: looked up, recorded with the documents, 初审 by another member
    # of the platform than the one who recorded it, 审定 by the county.
    platform, platform2, city = [
        await log_in(gateway, f"demo-{who}") for who in ("platform", "platform2", "city")
    ]
    looked_up = await platform.get(f"{SURVEY}/changes/lookup/{number}")
    assert looked_up.status_code == 200 and number not in looked_up.text, looked_up.text
    recorded = await platform.post(
        f"{SURVEY}/changes",
        json={
            "client_id": str(uuid4()),
            "id_number": number,
            "items": {"residence_address": NEW_ADDRESS},
            "documents": ["residence_permit"],
            "reason": "搬家，变更居住地址",
        },
    )
    assert recorded.status_code == 201, recorded.text
    change_task = f"{SURVEY}/tasks/{recorded.json()['task_id']}"
    problem(
        await platform.post(f"{change_task}/review", json={"decision": "pass"}),
        409,
        "maker-checker",
    )
    await first_reviewed_and_approved(platform2, county, change_task)
    timings.mark("变更登记: recorded by demo-platform, 初审 demo-platform2, 审定 demo-county")

    # A kiosk's correction of the phone: the same queue, 初审 and 审定.
    survey = f"http://127.0.0.1:{httpx.URL(gateway).port + 3}"  # SERVICES' order of ports
    async with httpx.AsyncClient(base_url=survey, timeout=60) as internal:
        corrected = await internal.post(
            "/internal/survey/corrections",
            headers=caller_headers(
                "survey", username="kiosk:demo-kiosk", role="self", scope=region
            ),
            json={
                "client_id": str(uuid4()),
                "person_id": person_id,
                "region_code": region,
                "origin": "kiosk",
                "items": {"phone": KIOSK_PHONE},
            },
        )
    assert corrected.status_code == 201, corrected.text
    waiting = {"channel": "self", "state": "submitted"}
    queue = (await platform.get(f"{SURVEY}/tasks", params=waiting)).json()
    assert corrected.json()["task_id"] in {t["task_id"] for t in queue["items"]}, queue
    await first_reviewed_and_approved(
        platform, county, f"{SURVEY}/tasks/{corrected.json()['task_id']}"
    )
    await popup_until(counter, number, lambda p: not p["pending"], "no value pending")
    timings.mark("a kiosk correction: in the same queue, 初审 and 审定")

    # 抽查: the city samples the day's approved records, re-checks each once, one is wrong.
    today = datetime.now(UTC).astimezone(CHINA).date().isoformat()
    drawn = await city.post(
        f"{SURVEY}/samples",
        json={
            "region_code": region[:4],
            "per_county": 20,
            "per_surveyor": 20,
            "approved_from": today,
            "approved_to": today,
        },
    )
    assert drawn.status_code == 201, drawn.text
    sample = drawn.json()
    records = sample["records"]
    ours = [r for r in records if r["person"]["person_id"] == person_id]
    assert {r["channel"] for r in ours} >= {"counter", "platform", "kiosk"}, records
    for index, record in enumerate(records):
        wrong = {"result": "error", "wrong_items": ["phone"], "comment": "电话空号"}
        check = wrong if index == 0 else {"result": "correct"}
        path = f"{SURVEY}/samples/{sample['sample_id']}/checks/{record['record_id']}"
        answered = await city.post(path, json=check)
        assert answered.status_code in (200, 201), answered.text
    problem(await city.post(path, json={"result": "correct"}), 409, "already-checked")
    rates = (await city.get(f"{SURVEY}/samples/{sample['sample_id']}")).json()["rates"]
    assert (rates["overall"]["checked"], rates["overall"]["errors"]) == (len(records), 1), rates
    assert rates["overall"]["error_rate"] == 1 / len(records)
    assert sum(m["errors"] for m in rates["by_maker"]) == 1 and rates["by_county"], rates
    quality = (await city.get(f"{SURVEY}/quality", params={"region": region[:4]})).json()
    assert quality["overall"]["errors"] >= 1, quality
    timings.mark(f"抽查 of {len(records)} records: error rate {rates['overall']['error_rate']:.3f}")

    # The person's history: the change, who collected and who checked it, and the steps.
    history = await reviewer.get(f"/api/v1/persons/{number}/history")
    assert history.status_code == 200, history.text
    body = history.json()
    assert NEW_PHONE not in history.text, "values are masked in the history"
    phone_rows = [c for c in body["changes"] if c["item"] == "phone"]
    assert any(
        (c["handler"], c["reviewer"]) == ("demo-counter", "demo-reviewer") for c in phone_rows
    ), phone_rows
    steps = [(s["label"], s["by"]) for s in body["steps"]]
    for stage, who in (
        ("复核", "demo-reviewer"),
        ("初审", "demo-platform2"),
        ("初审", "demo-platform"),
        ("审定", "demo-county"),
    ):
        assert any(stage in label and by == who for label, by in steps), (stage, who, steps)
    assert any(label.startswith("提交") and by == "demo-platform" for label, by in steps), steps
    timings.mark(f"history: {len(body['changes'])} changes, {len(body['steps'])} steps")
    for client in (counter, reviewer, county, platform, platform2, city):
        await client.aclose()


def test_changes_are_reviewed_written_back_and_kept_in_the_history() -> None:
    timings = Timings("changes")
    with fresh_stack("canbao-changes-") as running:
        timings.mark("stack ready")
        bootstrap = (running.state / "kafka-bootstrap").read_text().strip()
        asyncio.run(changes(running.gateway, running.sources, bootstrap, timings))
    timings.mark("stack stopped")
