"""Self-service on the real local stack (`make run` on a fresh state directory, 300 people),
through the public API only, as a kiosk and as the mobile app (api.md "Self-service"):

* the demo kiosk logs in with its client credentials and opens a session with the number and
  name read from the ID card of a person the generator's ground truth says lacks a phone;
* their own record shows the statuses of the ground truth, with zh-CN labels, and reminds them
  to complete the phone;
* the phone, sent twice by a kiosk that retried, is one task in survey's queue (channel self);
  demo-platform passes it (初审), demo-county approves it (审定), and the counter popup stops
  asking for the phone;
* the proof of insurance (参保证明) downloaded on the kiosk verifies at /api/v1/verify/{code}
  without a login, with the statuses at issue;
* the mobile channel: `canbao mobile-token <number>` (the local identity provider) opens a
  session of its own, and the same token cannot open a second one;
* the kiosk page in a real browser (tests/stack/kiosk_browser.py), for a second person: card,
  own record, the phone on the keypad, the certificate (which then verifies), logout, and a
  session that ends when left alone;
* a partner department on the same stack (api.md "Partner departments"): `demo-civil` sends a
  batch of allowance recipients (one of them unknown to the registry, one row refused), the
  accepted rows become people of the registry, and its comparison answers each number with the
  ground truth's pension and medical statuses and nothing it may not see."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
from pypdf import PdfReader

from canbao_contracts.id_numbers import check_character
from canbao_platform.service_tokens import DEVELOPMENT_PRIVATE_KEY, private_key
from canbao_stack import national
from canbao_stack.dci_client import DciClient, by_ssn
from canbao_stack.national import OWED
from tests.stack.kiosk_browser import kiosk_round_trip
from tests.stack.test_changes_review import popup_until
from tests.stack.test_local_stack import fresh_stack
from tests.stack.test_survey_campaign import Timings, log_in, problem

WITHIN_S = 150
NEW_PHONE = "13955551234"
SURVEY = "/api/v1/survey"


async def person_missing_a_phone(sources: str, nth: int = 0) -> dict[str, Any]:
    """The `nth` living, in-scope, household-registered person of the ground truth whose only gap
    is the phone, with no name trouble (the kiosk's card must carry the registry's name)."""
    connection = await asyncpg.connect(sources)
    try:
        row = await connection.fetchrow(
            "SELECT id_number, name, statuses, registration FROM simulator.expected_outcome "
            "WHERE in_scope AND NOT deceased AND household_registered AND id_number IS NOT NULL "
            "AND missing = $1::jsonb AND inaccurate = '[]'::jsonb "
            "AND NOT survey_reasons ? 'identity_conflict' AND NOT traits ? 'name_variant' "
            "AND NOT traits ? 'legacy_15' ORDER BY id_number OFFSET $2 LIMIT 1",
            json.dumps([{"item": "phone", "code": "AAE005"}]),
            nth,
        )
    finally:
        await connection.close()
    assert row is not None, "the demo population has nobody whose only gap is the phone"
    found = dict(row)
    return found | {"statuses": json.loads(row["statuses"])}


async def kiosk_session(gateway: str, number: str, name: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=gateway, timeout=60)
    device = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "demo-kiosk",
            "client_secret": "demo",
        },
    )
    assert device.status_code == 200, device.text
    kiosk = {"Authorization": f"Bearer {device.json()['access_token']}"}
    wrong = await client.post(
        "/api/v1/self/session", headers=kiosk, json={"id_number": number, "name": name + "某"}
    )
    problem(wrong, 403, "name-mismatch")
    opened = await client.post(
        "/api/v1/self/session", headers=kiosk, json={"id_number": number, "name": name}
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["expires_in"] == 600
    client.headers["Authorization"] = f"Bearer {opened.json()['access_token']}"
    return client


async def own_record_until(citizen: httpx.AsyncClient, done: Any, what: str) -> dict[str, Any]:
    deadline, record = time.monotonic() + WITHIN_S, {}
    while time.monotonic() < deadline:
        response = await citizen.get("/api/v1/self/me")
        assert response.status_code == 200, response.text
        record = response.json()
        if done(record):
            return dict(record)
        await asyncio.sleep(1)
    raise AssertionError(f"the own record never showed {what}: {record}")


def mobile_token(state: Path, number: str) -> str:
    """`canbao mobile-token <number>`: the local identity provider's ID token."""
    command = [
        sys.executable,
        "-m",
        "canbao_stack.cli",
        "mobile-token",
        number,
        "--state-dir",
        str(state),
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


async def self_service(gateway: str, sources: str, state: Path, timings: Timings) -> None:
    person = await person_missing_a_phone(sources)
    number = person["id_number"]
    counter = await log_in(gateway, "demo-counter")
    # The stack registers its population from the CDC snapshot, source by source: wait until the
    # registry has heard them all (a session tried earlier is not-registered, and counts against
    # the number's limit).
    await popup_until(
        counter,
        number,
        lambda p: p["statuses"] == person["statuses"],
        "the ground truth's statuses",
    )
    timings.mark("the person registered, with the ground truth's statuses")
    citizen = await kiosk_session(gateway, number, person["name"])
    record = await own_record_until(citizen, lambda r: not r["verdict_pending"], "a verdict")
    timings.mark("kiosk session, own record")
    assert record["statuses"] == person["statuses"]
    assert record["registration"] == person["registration"]
    assert record["name"].startswith(person["name"][0]) and "*" in record["name"]
    assert all(record["status_labels"][k] for k, code in person["statuses"].items() if code)
    [phone] = [r for r in record["reminders"] if r["item"] == "phone"]
    assert phone["self_service"] and "联系电话" in phone["text"]

    entry = {"client_id": str(uuid4()), "items": {"phone": NEW_PHONE}}
    sent = await citizen.post("/api/v1/self/me/corrections", json=entry)
    again = await citizen.post("/api/v1/self/me/corrections", json=entry)  # the kiosk retried
    assert sent.status_code == again.status_code == 202, (sent.text, again.text)
    assert sent.json()["task_id"] == again.json()["task_id"]
    task_id = sent.json()["task_id"]
    platform, county = await log_in(gateway, "demo-platform"), await log_in(gateway, "demo-county")
    queue = await platform.get(f"{SURVEY}/tasks", params={"channel": "self"})
    assert [t["task_id"] for t in queue.json()["items"]] == [task_id], queue.text
    passed = await platform.post(f"{SURVEY}/tasks/{task_id}/review", json={"decision": "pass"})
    assert passed.json()["state"] == "first_reviewed", passed.text
    approved = await county.post(f"{SURVEY}/tasks/{task_id}/approve", json={"decision": "approve"})
    assert approved.json()["state"] == "approved", approved.text
    deadline = time.monotonic() + WITHIN_S
    while time.monotonic() < deadline:
        popup = (await counter.get(f"/api/v1/counter/popup/{number}")).json()
        if "phone" not in [m["item"] for m in popup["missing"]]:
            break
        await asyncio.sleep(1)
    else:
        raise AssertionError(f"the counter still asks for the phone: {popup}")
    timings.mark("correction 初审, 审定, the counter no longer asks")
    mine = (await citizen.get("/api/v1/self/me/corrections")).json()
    assert [(c["task_id"], c["state"]) for c in mine] == [(task_id, "approved")]

    certificate = await citizen.get("/api/v1/self/me/certificate.pdf")
    assert certificate.status_code == 200, certificate.text
    assert certificate.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(certificate.content)).pages)
    code = re.search(r"验证码[：:]\s*([0-9A-Z-]{10,})", text)
    assert code is not None, text
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as anyone:
        verified = await anyone.get(f"/api/v1/verify/{code.group(1)}")
    assert verified.status_code == 200, verified.text
    assert verified.json()["genuine"] is True
    assert verified.json()["statuses"] == person["statuses"]
    assert person["name"] not in verified.text and number not in verified.text  # masked
    timings.mark("certificate issued and verified")

    minted = await asyncio.to_thread(mobile_token, state, number)
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as app:
        opened = await app.post("/api/v1/self/session", json={"id_token": minted})
        assert opened.status_code == 201, opened.text
        session = {"Authorization": f"Bearer {opened.json()['access_token']}"}
        me = await app.get("/api/v1/self/me", headers=session)
        assert me.status_code == 200 and me.json()["statuses"] == person["statuses"], me.text
        replayed = await app.post("/api/v1/self/session", json={"id_token": minted})
        problem(replayed, 401, "id-token-replayed")
    assert (await citizen.delete("/api/v1/self/session")).status_code == 204
    problem(await citizen.get("/api/v1/self/me"), 401, "session-ended")
    timings.mark("mobile session; kiosk session ended")

    # The kiosk page in a browser, for another person (the queue above is the first one's).
    second = await person_missing_a_phone(sources, nth=1)
    await popup_until(
        counter, second["id_number"], lambda p: p["statuses"] == second["statuses"], "the statuses"
    )
    code = await asyncio.to_thread(
        kiosk_round_trip, gateway, second["id_number"], second["name"], second["statuses"]
    )
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as anyone:
        printed = (await anyone.get(f"/api/v1/verify/{code}")).json()
    assert printed["statuses"] == second["statuses"], printed
    queue = await platform.get(f"{SURVEY}/tasks", params={"channel": "self", "state": "submitted"})
    assert len(queue.json()["items"]) == 1, queue.text  # the page's correction, waiting
    timings.mark("kiosk page in a browser")
    for client in (citizen, platform, county, counter):
        await client.aclose()


async def partner_department(gateway: str, sources: str, timings: Timings) -> None:
    person = await person_missing_a_phone(sources, nth=2)
    newcomer = "52010219660606021" + check_character("52010219660606021")
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        login = await client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-civil",
                "client_secret": "demo",
            },
        )
        assert login.status_code == 200, login.text
        civil = {"Authorization": f"Bearer {login.json()['access_token']}"}
        body = (
            f"sfzh,xm,xzqh,ksrq\n{person['id_number']},{person['name']},520102,2025-01-01\n"
            f"{newcomer},民政新人,520102,2025-03-01\n{newcomer[:-1]}Z,坏号码,520102,2025-03-01\n"
        )
        sent = await client.post(
            "/api/v1/partners/civil/batches",
            content=body.encode(),
            headers=civil | {"Idempotency-Key": "stack-dibao-1", "Content-Type": "text/csv"},
        )
        assert sent.status_code == 202, sent.text
        assert (sent.json()["received"], sent.json()["accepted"], sent.json()["rejected"]) == (
            3,
            2,
            1,
        )
        timings.mark("partner batch received")

        deadline = time.monotonic() + WITHIN_S
        while True:
            compared = await client.post(
                "/api/v1/partners/civil/comparisons",
                headers=civil,
                json={"id_numbers": [person["id_number"], newcomer]},
            )
            assert compared.status_code == 200, compared.text
            known, new = compared.json()["items"]
            if new["outcome"] != "not_registered":
                break
            assert time.monotonic() < deadline, "the batch's newcomer never reached the registry"
            await asyncio.sleep(1)
        assert known["outcome"] == "found"
        expected = {k: person["statuses"][k] for k in ("pension", "medical")}
        assert known["statuses"] == expected, known  # demo-civil sees these two, no others
        assert person["name"] not in compared.text and person["id_number"] not in compared.text
        timings.mark("partner comparison")

        # The same question in the DCI standard's words (api.md "Partner departments").
        envelope = {
            "header": {
                "version": "1.0.0",
                "message_id": "stack-dci-1",
                "message_ts": "2026-12-04T09:00:00+08:00",
                "action": "search",
                "sender_id": "demo-civil",
                "total_count": 1,
            },
            "message": {
                "transaction_id": "stack-t-1",
                "search_request": [
                    {
                        "reference_id": "r-1",
                        "timestamp": "2026-12-04T09:00:00+08:00",
                        "search_criteria": {
                            "query_type": "idtype-value",
                            "query": {"type": "SSN", "value": person["id_number"]},
                        },
                    }
                ],
            },
        }
        searched = await client.post(
            "/api/v1/partners/dci/registry/sync/search", headers=civil, json=envelope
        )
        assert searched.status_code == 200, searched.text
        assert searched.json()["header"]["status"] == "succ" and searched.json()["signature"]
        [record] = searched.json()["message"]["search_response"][0]["data"]["reg_records"]
        found = {a["name"]: a["value"] for a in record["additional_attributes"]}
        assert {k: found[k] for k in ("pension", "medical")} == expected
        timings.mark("DCI search")


async def holdings_until(national: str, done: Any, what: str) -> dict[str, Any]:
    deadline, holdings = time.monotonic() + WITHIN_S, {}
    async with httpx.AsyncClient(base_url=national, timeout=30) as client:
        while time.monotonic() < deadline:
            holdings = (await client.get("/national/holdings")).json()
            if done(holdings):
                return dict(holdings)
            await asyncio.sleep(1)
    raise AssertionError(f"the national registry never held {what}: {holdings}")


async def national_exchange(
    gateway: str, sources: str, state: Path, national_url: str, timings: Timings
) -> None:
    """Up to the ministry (44号 Art.10): the stand-in national registry, subscribed by the stack
    at its start, comes to hold exactly the people the registry's own search of the exchange's
    filter selects; an enrolment entered in si_core takes a household person out of it (source
    table → Debezium → identity → matching → the gateway's notification); an asynchronous DCI
    search is answered at its registered address. The questions are asked as the national
    registry, with its key, through the partner client (canbao_stack.dci_client)."""
    ministry = DciClient(
        gateway,
        national.CLIENT_ID,
        national.SECRET,
        signing_key=national.signing_key(state),
        registry_key=private_key(DEVELOPMENT_PRIVATE_KEY).public_key(),
    )

    async def selected() -> dict[str, dict[str, Any]]:
        """The registry's own answer to the exchange's filter (a DCI sync search), by number."""
        found: dict[str, dict[str, Any]] = {}
        seen, query = (
            0,
            {
                "type": "ns:org:QueryType:NoSql",
                "value": {"expression": {"collection": "Member", "query": OWED}},
            },
        )
        for page in range(1, 100):
            answer = await ministry.search(
                [
                    {
                        "query_type": "expression",
                        "query": query,
                        "pagination": {"page_size": 1000, "page_number": page},
                    }
                ]
            )
            [response] = answer["message"]["search_response"]
            for record in response["data"]["reg_records"]:
                seen += 1
                if "member_identifier" not in record:  # no number: not for the ministry
                    continue
                number = record["member_identifier"][0]["identifier_value"]
                found[number] = {a["name"]: a["value"] for a in record["additional_attributes"]}
            if seen >= response["pagination"]["total_count"]:
                return found
        raise AssertionError("more than 99 pages")

    async with ministry, httpx.AsyncClient(base_url=national_url, timeout=30) as receiver:
        deadline = time.monotonic() + WITHIN_S
        while True:
            holdings = (await receiver.get("/national/holdings")).json()
            owed = await selected()
            if set(holdings["held"]) == set(owed) or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)
        assert set(holdings["held"]) == set(owed), (len(holdings["held"]), len(owed))
        kinds = {a["household_registered_locally"] for a in holdings["held"].values()}
        assert kinds == {True, False}, kinds  # both of the exchange's kinds of people
        timings.mark(f"national registry holds the {len(owed)} people owed")

        # A household person not insured in the province enrols in the employees' pension.
        connection = await asyncpg.connect(sources)
        try:
            number = next(
                n
                for n, a in sorted(holdings["held"].items())
                if a["household_registered_locally"] and len(n) == 18
            )
            await connection.execute(
                "INSERT INTO si_core.ac01 (aac001, aac002, aac003, aab301) "
                "VALUES ('NAT0001', $1, '国家库测试', '520102')",
                number,
            )
            await connection.execute(
                "INSERT INTO si_core.ac02 (aac001, aae140, aab301, aab001, aac008, aac030, "
                "aae030) VALUES ('NAT0001', '110', '520102', 'U001', '1', '2026-01-01', "
                "'2026-01-01')"
            )
        finally:
            await connection.close()
        left = await holdings_until(national_url, lambda h: number in h["left"], f"{number} left")
        assert number not in left["held"]
        timings.mark("an enrolment in si_core reached the national registry")

        # An asynchronous search by number, answered at the registered address.
        acknowledged = await ministry.search_later(
            [by_ssn(number)],
            transaction_id="stack-async-1",
            sender_uri=f"{national_url}/dci/on-search",
        )
        assert acknowledged["message"]["ack_status"] == "ACK", acknowledged
        answered = await holdings_until(
            national_url, lambda h: "stack-async-1" in h["answers"], "the answer to its search"
        )
        [response] = answered["answers"]["stack-async-1"]["search_response"]
        [record] = response["data"]["reg_records"]
        found = {a["name"]: a["value"] for a in record["additional_attributes"]}
        assert found["pension"] == "11", found
        timings.mark("DCI asynchronous search answered")


def test_a_citizen_serves_themself_on_a_kiosk_and_in_the_app() -> None:
    timings = Timings("self-service")
    with fresh_stack("canbao-self-") as running:
        timings.mark("stack ready")
        asyncio.run(self_service(running.gateway, running.sources, running.state, timings))
        asyncio.run(partner_department(running.gateway, running.sources, timings))
        asyncio.run(
            national_exchange(
                running.gateway, running.sources, running.state, running.national, timings
            )
        )
