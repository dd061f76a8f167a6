"""The audit log: a row for every personal-data read (also the refused ones), never the clear
ID number, append-only in the database itself, and searchable by auditors of the region."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from canbao_gateway.audit import id_number_hash
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database
from tests.gateway.conftest import (
    Clock,
    assert_problem,
    bearer,
    break_the_audit_log,
    build_app,
    settings_for,
)
from tests.gateway.people import NANMING, YUNYAN, ZUNYI_HONGHUAGANG, citizen, legacy_15

AUDIT = "/api/v1/audit"
AUDIT_KEY = settings_for("unused").audit_key()


async def rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        result = await connection.execute(sa.select(audit_log).order_by(audit_log.c.id))
        return [dict(row) for row in result.mappings()]


async def read_person(client: httpx.AsyncClient, token: str, number: str) -> httpx.Response:
    return await client.get(f"/test/persons/{number}", headers=bearer(token))


async def test_reading_a_person_leaves_an_audit_row(
    client: httpx.AsyncClient,
    token_for: Callable[..., str],
    gateway_db: Database,
    test_clock: Clock,
) -> None:
    number = citizen(NANMING)
    token = token_for(Role.COUNTER, scope=NANMING, username="wang-li")
    assert (await read_person(client, token, number)).status_code == 200
    [row] = await rows(gateway_db)
    assert row | {"id": None} == {
        "id": None,
        "at": test_clock(),
        "staff": "wang-li",
        "role": "counter",
        "staff_scope": NANMING,
        "person_id": None,
        "id_number_hash": id_number_hash(number, key=AUDIT_KEY),
        "person_region": NANMING,
        "endpoint": "GET /test/persons/{id_number}",
        "purpose": "counter_service",
        "outcome": "ok",
        "client": "192.0.2.10",
    }


async def test_the_audit_log_never_holds_the_clear_number(
    client: httpx.AsyncClient, token_for: Callable[..., str], gateway_db: Database
) -> None:
    number = citizen(NANMING)
    await read_person(client, token_for(Role.COUNTER), number)
    await read_person(client, token_for(Role.COUNTER, scope=YUNYAN), number)  # refused
    async with gateway_db.engine.connect() as connection:
        dump = await connection.scalar(sa.text("SELECT string_agg(a::text, '|') FROM audit_log a"))
    assert dump is not None and number not in dump and number[:14] not in dump


async def test_an_out_of_scope_attempt_is_audited_as_refused(
    client: httpx.AsyncClient, token_for: Callable[..., str], gateway_db: Database
) -> None:
    token = token_for(Role.COUNTER, scope=YUNYAN, username="curious")
    assert_problem(await read_person(client, token, citizen(NANMING)), 403, "out-of-scope")
    [row] = await rows(gateway_db)
    assert (row["staff"], row["outcome"], row["person_region"], row["purpose"]) == (
        "curious",
        "out_of_scope",
        NANMING,
        "counter_service",
    )


async def test_refusals_before_any_data_is_touched_are_not_audited(
    client: httpx.AsyncClient, token_for: Callable[..., str], gateway_db: Database
) -> None:
    await read_person(client, token_for(Role.AUDITOR), citizen(NANMING))  # wrong role
    await client.get(f"/test/persons/{citizen(NANMING)}")  # no token
    assert await rows(gateway_db) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'ok', staff = 'someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_the_database_refuses_to_change_or_remove_audit_rows(
    client: httpx.AsyncClient,
    token_for: Callable[..., str],
    gateway_db: Database,
    statement: str,
) -> None:
    await read_person(client, token_for(Role.COUNTER), citizen(NANMING))
    before = await rows(gateway_db)
    with pytest.raises(DBAPIError) as refused:
        async with gateway_db.engine.begin() as connection:
            await connection.execute(sa.text(statement))
    assert "audit_log is append-only" in str(refused.value)
    assert refused.value.orig.sqlstate == "42501"  # type: ignore[union-attr]  # insufficient_privilege
    assert await rows(gateway_db) == before


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TRIGGER audit_log_append_only ON audit_log",
        "DROP TRIGGER audit_log_no_truncate ON audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "DROP FUNCTION audit_log_refuse_change() CASCADE",
        "DROP TABLE audit_log",
        "UPDATE audit_log SET outcome = 'ok', staff = 'someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "CREATE TABLE audit_log_copy (id bigint)",  # no CREATE on the schema either
    ],
)
async def test_the_gateways_own_login_cannot_undo_the_append_only_log(
    client: httpx.AsyncClient,
    token_for: Callable[..., str],
    gateway_url: str,
    gateway_db: Database,
    statement: str,
) -> None:
    """The triggers hold against every role but the owner, who may drop them: the gateway logs in
    as a role that owns nothing and has no privilege beyond reading and adding audit rows."""
    await read_person(client, token_for(Role.COUNTER), citizen(NANMING))
    before = await rows(gateway_db)
    as_the_gateway = Database(gateway_url, pool_size=1)
    try:
        with pytest.raises(DBAPIError) as refused:
            async with as_the_gateway.engine.begin() as connection:
                await connection.execute(sa.text(statement))
    finally:
        await as_the_gateway.dispose()
    assert refused.value.orig.sqlstate == "42501"  # type: ignore[union-attr]  # insufficient_privilege
    # Refused for want of a privilege, before any trigger had to: not "audit_log is append-only".
    assert re.search(r"permission denied|must be owner", str(refused.value)), refused.value
    assert await rows(gateway_db) == before
    assert len(before) == 1


async def test_the_gateways_own_login_adds_and_reads_audit_rows_and_idempotency_records(
    gateway_url: str, gateway_db: Database, test_clock: Clock
) -> None:
    """What the gateway does need: add and read audit rows; add, read and prune the messaging
    runtime's idempotency records (processed_messages)."""
    as_the_gateway = Database(gateway_url, pool_size=1)
    row = {
        "at": test_clock(),
        "staff": "wang-li",
        "role": "counter",
        "staff_scope": NANMING,
        "endpoint": "GET /test",
        "purpose": "counter_service",
        "outcome": "ok",
    }
    try:
        async with as_the_gateway.engine.begin() as connection:
            await connection.execute(sa.insert(audit_log), row)
            assert (await connection.execute(sa.select(audit_log.c.staff))).scalars().all() == [
                "wang-li"
            ]
            for statement in (
                "INSERT INTO processed_messages (consumer, message_key) VALUES ('c', 'k')",
                "SELECT * FROM processed_messages",
                "DELETE FROM processed_messages WHERE consumer = 'c'",
            ):
                await connection.execute(sa.text(statement))
    finally:
        await as_the_gateway.dispose()
    assert [r["staff"] for r in await rows(gateway_db)] == ["wang-li"]


async def test_auditor_finds_who_read_a_person_by_any_form_of_the_number(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    number = citizen(NANMING)
    await read_person(client, token_for(Role.COUNTER, username="wang-li"), number)
    await read_person(client, token_for(Role.COUNTY, username="li-ming"), citizen(YUNYAN))
    auditor = bearer(token_for(Role.AUDITOR, username="auditor"))
    for form in (number, legacy_15(NANMING)):
        page = (await client.get(AUDIT, params={"id_number": form}, headers=auditor)).json()
        reads = [item for item in page["items"] if item["purpose"] != "audit_review"]
        assert [item["staff"] for item in reads] == ["wang-li"]


async def test_auditor_filters_by_staff_and_time(
    client: httpx.AsyncClient, token_for: Callable[..., str], test_clock: Clock
) -> None:
    start = test_clock()
    for minute, staff in enumerate(["wang-li", "li-ming", "wang-li"]):
        test_clock.now = start + timedelta(minutes=minute)
        await read_person(client, token_for(Role.COUNTER, username=staff), citizen(NANMING))
    auditor = bearer(token_for(Role.AUDITOR))
    by_staff = await client.get(AUDIT, params={"staff": "wang-li"}, headers=auditor)
    at = [datetime.fromisoformat(item["at"]) for item in by_staff.json()["items"]]
    assert at == [start + timedelta(minutes=2), start]
    window = {
        "since": (start + timedelta(minutes=1)).isoformat(),
        "until": (start + timedelta(minutes=2)).isoformat(),
    }
    in_window = await client.get(AUDIT, params=window, headers=auditor)
    assert [item["staff"] for item in in_window.json()["items"]] == ["li-ming"]


async def test_audit_log_is_read_page_by_page_newest_first(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    clerk = token_for(Role.COUNTER)
    for sequence in range(5):
        await read_person(client, clerk, citizen(NANMING, sequence=f"{sequence:03d}"))
    auditor = bearer(token_for(Role.AUDITOR))
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2, "staff": "test-counter"}
    while True:
        page = (await client.get(AUDIT, params=params, headers=auditor)).json()
        seen += [item["id"] for item in page["items"]]
        if page["next_before"] is None:
            break
        params["before"] = page["next_before"]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


async def test_a_county_auditor_sees_the_log_of_her_county_only(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    await read_person(client, token_for(Role.COUNTER, username="nanming-clerk"), citizen(NANMING))
    zunyi = citizen(ZUNYI_HONGHUAGANG)
    await read_person(client, token_for(Role.COUNTER, username="zunyi-clerk"), zunyi)
    auditor = bearer(token_for(Role.AUDITOR, scope=NANMING))
    page = (await client.get(AUDIT, headers=auditor)).json()
    assert {item["staff"] for item in page["items"]} == {"nanming-clerk"}


async def test_reading_the_audit_log_is_itself_audited(
    client: httpx.AsyncClient, token_for: Callable[..., str], gateway_db: Database
) -> None:
    await client.get(AUDIT, headers=bearer(token_for(Role.AUDITOR, username="auditor")))
    [row] = await rows(gateway_db)
    assert (row["staff"], row["endpoint"], row["purpose"]) == (
        "auditor",
        "GET /api/v1/audit",
        "audit_review",
    )


@pytest.mark.parametrize(
    ("params", "slug"),
    [
        ({"id_number": "52010219800101123"}, "invalid-id-number"),
        ({"since": "2026-11-23T10:00:00"}, "invalid-request"),  # no time zone
        ({"limit": 0}, "invalid-request"),
        ({"person_id": "not-a-uuid"}, "invalid-request"),
        ({"before": 2**80}, "invalid-request"),  # beyond the bigint id: not a database error
    ],
)
async def test_bad_audit_queries_are_problems(
    client: httpx.AsyncClient, token_for: Callable[..., str], params: dict[str, Any], slug: str
) -> None:
    response = await client.get(AUDIT, params=params, headers=bearer(token_for(Role.AUDITOR)))
    assert_problem(response, 422, slug)


async def test_no_data_is_shown_when_its_audit_row_cannot_be_written(
    gateway_url: str,
    gateway_db: Database,
    token_for: Callable[..., str],
    test_clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await break_the_audit_log(gateway_db)  # say a full disk
    app = build_app(settings_for(gateway_url), test_clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            number = citizen(NANMING)
            response = await read_person(client, token_for(Role.COUNTER), number)
    body = assert_problem(response, 500, "internal-error")
    assert "region" not in body and "read_by" not in body
    assert "unhandled DBAPIError" in caplog.text and number not in caplog.text
