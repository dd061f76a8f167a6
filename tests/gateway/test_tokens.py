"""Access tokens: short-lived, signed with the gateway's key, refused with a problem that says
why (RFC 6750: a 401 with a WWW-Authenticate challenge)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import jwt
import pytest
import sqlalchemy as sa

from canbao_gateway import tokens
from canbao_gateway.staff import Role, Staff
from canbao_gateway.tables import staff_accounts
from canbao_platform.db import Database
from tests.gateway.conftest import AddAccount, Clock, assert_problem, bearer, settings_for

ME = "/api/v1/auth/me"
TOKEN = "/api/v1/auth/token"


async def test_token_is_good_until_its_fifteen_minutes_are_over(
    client: httpx.AsyncClient, token_for: Callable[..., str], test_clock: Clock
) -> None:
    token = token_for(Role.COUNTER)
    test_clock.advance(minutes=14, seconds=59)
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    test_clock.advance(seconds=1)
    response = await client.get(ME, headers=bearer(token))
    assert_problem(response, 401, "token-expired")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_request_without_a_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def _signed(claims: dict[str, object], key: str = tokens.ISSUER * 4) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda good: good[:-4] + "AAAA", id="signature tampered"),
        pytest.param(lambda good: "not.a.jwt", id="garbage"),
        pytest.param(
            lambda good: _signed(jwt.decode(good, options={"verify_signature": False})),
            id="signed with another key",
        ),
        pytest.param(
            lambda good: jwt.encode(
                jwt.decode(good, options={"verify_signature": False}), key=None, algorithm="none"
            ),
            id="unsigned (alg none)",
        ),
    ],
)
async def test_forged_token_is_refused(
    client: httpx.AsyncClient, token_for: Callable[..., str], forge: Callable[[str], str]
) -> None:
    response = await client.get(ME, headers=bearer(forge(token_for(Role.COUNTY))))
    assert_problem(response, 401, "invalid-token")


async def test_token_of_an_unknown_role_is_refused(
    client: httpx.AsyncClient, test_clock: Clock
) -> None:
    key = settings_for("unused").jwt_key()
    good = tokens.issue(
        Staff("x", Role.COUNTER, "52"),
        version=0,
        key=key,
        now=test_clock(),
        lifetime=timedelta(minutes=15),
    )
    claims = jwt.decode(good, options={"verify_signature": False}) | {"role": "superuser"}
    response = await client.get(ME, headers=bearer(jwt.encode(claims, key, algorithm="HS256")))
    assert_problem(response, 401, "invalid-token")


async def test_token_issued_in_the_future_is_refused(
    client: httpx.AsyncClient, token_for: Callable[..., str], test_clock: Clock
) -> None:
    test_clock.advance(hours=1)
    token = token_for(Role.COUNTER)
    test_clock.advance(hours=-1)
    assert_problem(await client.get(ME, headers=bearer(token)), 401, "invalid-token")


async def test_token_of_an_account_that_does_not_exist_is_refused(
    client: httpx.AsyncClient, test_clock: Clock
) -> None:
    key = settings_for("unused").jwt_key()
    token = tokens.issue(
        Staff("nobody", Role.COUNTER, "52"),
        version=0,
        key=key,
        now=test_clock(),
        lifetime=timedelta(minutes=15),
    )
    assert_problem(await client.get(ME, headers=bearer(token)), 401, "token-revoked")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"active": False}, id="disabled"),
        pytest.param({"role": Role.AUDITOR.value}, id="new role"),
        pytest.param({"scope": "5203"}, id="new scope"),
        pytest.param({"password_hash": "$argon2id$v=19$m=65536,t=3,p=4$new"}, id="new password"),
    ],
)
async def test_a_change_to_the_account_revokes_its_tokens_at_once(
    client: httpx.AsyncClient,
    add_account: AddAccount,
    gateway_db: Database,
    change: dict[str, object],
) -> None:
    # However the account is changed (here by SQL, as an administrator might): the database
    # raises its token version (tables.py).
    await add_account("wang-li", "s3cret", Role.COUNTER, "520102")
    login = await client.post(TOKEN, data={"username": "wang-li", "password": "s3cret"})
    token = login.json()["access_token"]
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    async with gateway_db.engine.begin() as connection:
        await connection.execute(sa.update(staff_accounts).values(change))
    response = await client.get(ME, headers=bearer(token))
    assert_problem(response, 401, "token-revoked")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_an_account_changed_back_does_not_revive_its_old_tokens(
    client: httpx.AsyncClient, add_account: AddAccount, gateway_db: Database
) -> None:
    await add_account("wang-li", "s3cret")
    token = (await client.post(TOKEN, data={"username": "wang-li", "password": "s3cret"})).json()
    for active in (False, True):
        async with gateway_db.engine.begin() as connection:
            await connection.execute(sa.update(staff_accounts).values(active=active))
    response = await client.get(ME, headers=bearer(token["access_token"]))
    assert_problem(response, 401, "token-revoked")
    again = await client.post(TOKEN, data={"username": "wang-li", "password": "s3cret"})
    assert (await client.get(ME, headers=bearer(again.json()["access_token"]))).status_code == 200
