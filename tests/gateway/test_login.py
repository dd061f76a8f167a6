"""Staff login (api.md: OAuth2 password grant at POST /api/v1/auth/token) and its throttling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import httpx
import pytest
import sqlalchemy as sa

from canbao_gateway.staff import Role, Staff
from canbao_gateway.tables import login_failures, staff_accounts
from canbao_gateway.throttling import MAX_FAILURES_PER_CLIENT, MAX_FAILURES_PER_USERNAME
from canbao_platform.db import Database
from tests.gateway.conftest import Clock, assert_problem, bearer, build_app, serve, settings_for

AddAccount = Callable[..., Awaitable[Staff]]
TOKEN = "/api/v1/auth/token"


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(TOKEN, data={"username": username, "password": password})


async def test_clerk_logs_in_and_the_token_says_who_she_is(
    client: httpx.AsyncClient, add_account: AddAccount
) -> None:
    await add_account("wang-li", "s3cret-密码", Role.COUNTER, "520102")
    response = await login(client, "wang-li", "s3cret-密码")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.json() == {"username": "wang-li", "role": "counter", "scope": "520102"}


async def test_scope_written_as_a_six_digit_city_code_is_stored_as_its_prefix(
    client: httpx.AsyncClient, add_account: AddAccount
) -> None:
    await add_account("city-analyst", "pw", Role.ANALYST, "520100")
    token = (await login(client, "city-analyst", "pw")).json()["access_token"]
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.json()["scope"] == "5201"


async def test_password_is_stored_as_an_argon2id_hash(
    add_account: AddAccount, gateway_db: Database
) -> None:
    await add_account("wang-li", "s3cret", Role.COUNTER)
    async with gateway_db.engine.connect() as connection:
        stored = await connection.scalar(sa.select(staff_accounts.c.password_hash))
    assert stored is not None and stored.startswith("$argon2id$") and "s3cret" not in stored


async def test_wrong_password_is_refused(
    client: httpx.AsyncClient, add_account: AddAccount
) -> None:
    await add_account("wang-li", "s3cret")
    response = await login(client, "wang-li", "guess")
    assert_problem(response, 401, "invalid-credentials")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "access_token" not in response.text


async def test_unknown_username_gets_the_same_answer_as_a_wrong_password(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(await login(client, "nobody", "guess"), 401, "invalid-credentials")


async def test_a_username_holding_a_nul_is_an_unknown_username_not_a_database_error(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(await login(client, "demo\x00-counter", "demo"), 401, "invalid-credentials")


async def test_disabled_account_cannot_log_in(
    client: httpx.AsyncClient, add_account: AddAccount, gateway_db: Database
) -> None:
    await add_account("left-the-job", "s3cret")
    async with gateway_db.engine.begin() as connection:
        await connection.execute(sa.update(staff_accounts).values(active=False))
    assert_problem(await login(client, "left-the-job", "s3cret"), 401, "invalid-credentials")


async def test_login_form_without_password_is_an_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(TOKEN, data={"username": "wang-li"})
    body = assert_problem(response, 422, "invalid-request")
    assert any(error["location"][-1] == "password" for error in body["errors"])


async def test_after_too_many_wrong_passwords_even_the_right_one_waits(
    client: httpx.AsyncClient, add_account: AddAccount, test_clock: Clock
) -> None:
    await add_account("wang-li", "s3cret")
    for _ in range(MAX_FAILURES_PER_USERNAME):
        assert (await login(client, "wang-li", "guess")).status_code == 401
    test_clock.advance(minutes=5)
    response = await login(client, "wang-li", "s3cret")
    body = assert_problem(response, 429, "login-throttled")
    assert response.headers["retry-after"] == str(10 * 60)
    assert body["retry_after"] == 10 * 60
    test_clock.advance(minutes=10)
    assert (await login(client, "wang-li", "s3cret")).status_code == 200


async def test_a_successful_login_clears_the_failures_of_the_username(
    client: httpx.AsyncClient, add_account: AddAccount
) -> None:
    await add_account("wang-li", "s3cret")
    for _ in range(2):
        for _ in range(MAX_FAILURES_PER_USERNAME - 1):
            assert (await login(client, "wang-li", "guess")).status_code == 401
        assert (await login(client, "wang-li", "s3cret")).status_code == 200


async def test_one_address_guessing_many_usernames_is_throttled(
    client: httpx.AsyncClient, gateway_db: Database, test_clock: Clock
) -> None:
    # Arranged as rows: twenty Argon2 checks of unknown names would only cost the test time.
    async with gateway_db.engine.begin() as connection:
        rows = [
            {"username": f"guess-{i}", "client": "192.0.2.10", "failed_at": test_clock()}
            for i in range(MAX_FAILURES_PER_CLIENT)
        ]
        await connection.execute(sa.insert(login_failures), rows)
    assert_problem(await login(client, "someone-else", "guess"), 429, "login-throttled")


async def test_throttling_holds_across_replicas(
    gateway_url: str, add_account: AddAccount, test_clock: Clock
) -> None:
    await add_account("wang-li", "s3cret")
    settings = settings_for(gateway_url)
    async with (
        serve(build_app(settings, test_clock)) as replica_a,
        serve(build_app(settings, test_clock)) as replica_b,
    ):
        for _ in range(MAX_FAILURES_PER_USERNAME):
            assert (await login(replica_a, "wang-li", "guess")).status_code == 401
        assert_problem(await login(replica_b, "wang-li", "s3cret"), 429, "login-throttled")


async def test_parallel_guesses_cannot_slip_past_the_limit(
    gateway_url: str, add_account: AddAccount, test_clock: Clock
) -> None:
    # One guess per replica (a replica itself admits one login per username at a time,
    # login_gate.py): the database's lock is what holds them to the limit.
    await add_account("wang-li", "s3cret")
    attempts = MAX_FAILURES_PER_USERNAME + 3
    settings = settings_for(gateway_url)
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(serve(build_app(settings, test_clock)))
            for _ in range(attempts)
        ]
        responses = await asyncio.gather(*(login(r, "wang-li", "guess") for r in replicas))
    outcomes = sorted((r.status_code, r.json()["type"]) for r in responses)
    assert outcomes == (
        [(401, "/problems/invalid-credentials")] * MAX_FAILURES_PER_USERNAME
        + [(429, "/problems/login-throttled")] * 3
    )


async def test_login_is_in_the_openapi_document_as_an_oauth2_password_flow(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert {"/api/v1/auth/token", "/api/v1/auth/me", "/api/v1/audit"} <= set(document["paths"])
    schemes = document["components"]["securitySchemes"]
    flows = schemes["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == flows["clientCredentials"]["tokenUrl"] == TOKEN
    assert schemes["CitizenSession"]["scheme"] == "bearer"  # api.md "Self-service"


async def failure_clients(database: Database) -> list[str]:
    async with database.engine.connect() as connection:
        return list(await connection.scalars(sa.select(login_failures.c.client)))


async def test_an_address_forwarded_by_a_trusted_proxy_is_the_client(
    gateway_url: str, gateway_db: Database, test_clock: Clock
) -> None:
    # The test's connections come from 192.0.2.10 (conftest.serve): here, the ingress.
    settings = settings_for(gateway_url, trusted_proxies=["192.0.2.0/24"])
    async with serve(build_app(settings, test_clock)) as client:
        response = await client.post(
            TOKEN,
            data={"username": "x", "password": "guess"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    assert_problem(response, 401, "invalid-credentials")
    assert await failure_clients(gateway_db) == ["203.0.113.7"]


@pytest.mark.parametrize("proxies", [[], ["10.0.0.0/8"]], ids=["none trusted", "another proxy"])
async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
    gateway_url: str, gateway_db: Database, test_clock: Clock, proxies: list[str]
) -> None:
    settings = settings_for(gateway_url, trusted_proxies=proxies)
    async with serve(build_app(settings, test_clock)) as client:
        response = await client.post(
            TOKEN,
            data={"username": "x", "password": "guess"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    assert_problem(response, 401, "invalid-credentials")
    assert await failure_clients(gateway_db) == ["192.0.2.10"]


def test_no_proxy_is_trusted_unless_configured_and_never_everyone() -> None:
    assert settings_for("unused").trusted_proxies == []
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        settings_for("unused", trusted_proxies=["*"])


async def test_an_overlong_forwarded_address_still_counts_and_locks_the_user_out(
    gateway_url: str, gateway_db: Database, add_account: AddAccount, test_clock: Clock
) -> None:
    # Whatever the client part of X-Forwarded-For holds (here longer than any address, and
    # different each time), a failure is counted against the username and the lock-out holds.
    await add_account("wang-li", "s3cret")
    settings = settings_for(gateway_url, trusted_proxies=["192.0.2.10"])
    async with serve(build_app(settings, test_clock)) as client:
        for attempt in range(MAX_FAILURES_PER_USERNAME):
            forwarded = {"X-Forwarded-For": f"{attempt}-" + "x" * 200}
            response = await client.post(
                TOKEN, data={"username": "wang-li", "password": "guess"}, headers=forwarded
            )
            assert_problem(response, 401, "invalid-credentials")
        response = await client.post(
            TOKEN,
            data={"username": "wang-li", "password": "s3cret"},
            headers={"X-Forwarded-For": "y" * 200},
        )
        assert_problem(response, 429, "login-throttled")
    clients = await failure_clients(gateway_db)
    assert len(set(clients)) == MAX_FAILURES_PER_USERNAME  # each counted as its own client
    assert all(len(client) <= 64 and client != "192.0.2.10" for client in clients)


async def test_a_client_address_longer_than_its_column_is_still_counted(
    gateway_url: str, gateway_db: Database, test_clock: Clock
) -> None:
    # Whatever the server reports as the client (a proxy's odd value, a unix socket's path):
    # the failure is counted, never a 500 that takes the count with it.
    app = build_app(settings_for(gateway_url), test_clock)
    transport = httpx.ASGITransport(app=app, client=("x" * 100, 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        assert_problem(await login(client, "wang-li", "guess"), 401, "invalid-credentials")
    [counted] = await failure_clients(gateway_db)
    assert len(counted) <= 64
