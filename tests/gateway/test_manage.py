"""Administrators add and disable staff accounts from the command line (canbao_gateway.manage)."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canbao_gateway import manage
from canbao_gateway.clients import callback_context
from canbao_gateway.tables import clients as clients_table
from canbao_platform.db import Database
from tests.gateway.conftest import assert_problem, bearer, settings_for

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/auth/me"
PASSWORD = "correct horse battery staple"


async def run(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str, stdin: str = "") -> int:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    # asyncio.run inside: off the test's event loop.
    return await asyncio.to_thread(manage.main, list(argv))


async def test_added_clerk_logs_in_with_her_role_and_scope(
    monkeypatch: pytest.MonkeyPatch,
    gateway_url: str,
    client: httpx.AsyncClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("add-staff", "wang-li", "--role", "counter", "--scope", "520100", "--password-stdin")
    assert await run(monkeypatch, gateway_url, *argv, stdin=PASSWORD + "\n") == 0
    assert PASSWORD not in capsys.readouterr().out
    token = (await client.post(TOKEN, data={"username": "wang-li", "password": PASSWORD})).json()
    me = await client.get("/api/v1/auth/me", headers=bearer(token["access_token"]))
    assert me.json() == {"username": "wang-li", "role": "counter", "scope": "5201"}


async def test_disabled_clerk_can_no_longer_log_in(
    monkeypatch: pytest.MonkeyPatch, gateway_url: str, client: httpx.AsyncClient
) -> None:
    add = ("add-staff", "wang-li", "--role", "county", "--scope", "520102", "--password-stdin")
    assert await run(monkeypatch, gateway_url, *add, stdin=PASSWORD) == 0
    assert await run(monkeypatch, gateway_url, "disable-staff", "wang-li") == 0
    response = await client.post(TOKEN, data={"username": "wang-li", "password": PASSWORD})
    assert_problem(response, 401, "invalid-credentials")


async def test_disabling_a_clerk_revokes_the_token_she_holds_at_once(
    monkeypatch: pytest.MonkeyPatch, gateway_url: str, client: httpx.AsyncClient
) -> None:
    add = ("add-staff", "wang-li", "--role", "counter", "--scope", "520102", "--password-stdin")
    assert await run(monkeypatch, gateway_url, *add, stdin=PASSWORD) == 0
    login = await client.post(TOKEN, data={"username": "wang-li", "password": PASSWORD})
    token = login.json()["access_token"]
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    assert await run(monkeypatch, gateway_url, "disable-staff", "wang-li") == 0
    # No waiting for the token's fifteen minutes: the very next request is refused.
    assert_problem(await client.get(ME, headers=bearer(token)), 401, "token-revoked")


async def test_a_reviewer_who_moves_to_the_county_logs_in_again_as_an_approver(
    monkeypatch: pytest.MonkeyPatch,
    gateway_url: str,
    client: httpx.AsyncClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add = ("add-staff", "wu-fang", "--role", "platform", "--scope", "520102", "--password-stdin")
    assert await run(monkeypatch, gateway_url, *add, stdin=PASSWORD) == 0
    login = {"username": "wu-fang", "password": PASSWORD}
    token = (await client.post(TOKEN, data=login)).json()["access_token"]
    move = ("move-staff", "wu-fang", "--role", "county", "--scope", "520100")
    assert await run(monkeypatch, gateway_url, *move) == 0
    assert "tokens no longer work" in capsys.readouterr().out
    # The platform token is of the old post: refused at once.
    assert_problem(await client.get(ME, headers=bearer(token)), 401, "token-revoked")
    token = (await client.post(TOKEN, data=login)).json()["access_token"]
    me = await client.get(ME, headers=bearer(token))
    assert me.json() == {"username": "wu-fang", "role": "county", "scope": "5201"}


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (("add-staff", "x", "--role", "counter", "--scope", "5", "--password-stdin"), PASSWORD),
        (("add-staff", "x", "--role", "counter", "--scope", "52", "--password-stdin"), "short"),
        (("disable-staff", "nobody"), ""),
        (("move-staff", "nobody", "--role", "county", "--scope", "52"), ""),
        (("move-staff", "nobody", "--role", "county", "--scope", "5"), ""),
    ],
)
async def test_mistakes_are_refused(
    monkeypatch: pytest.MonkeyPatch, gateway_url: str, argv: tuple[str, ...], stdin: str
) -> None:
    assert await run(monkeypatch, gateway_url, *argv, stdin=stdin) != 0


async def test_an_account_is_not_added_twice(
    monkeypatch: pytest.MonkeyPatch, gateway_url: str
) -> None:
    add = ("add-staff", "wang-li", "--role", "counter", "--scope", "52", "--password-stdin")
    assert await run(monkeypatch, gateway_url, *add, stdin=PASSWORD) == 0
    assert await run(monkeypatch, gateway_url, *add, stdin=PASSWORD) == 1


async def test_a_partner_client_gets_a_secret_once_and_a_new_one_on_rotation(
    monkeypatch: pytest.MonkeyPatch,
    gateway_url: str,
    client: httpx.AsyncClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add = (
        "add-partner",
        "civil-nanming",
        "--department",
        "civil",
        "--name",
        "南明区民政局",
        "--permission",
        "comparisons",
        "--field",
        "pension",
    )
    assert await run(monkeypatch, gateway_url, *add) == 0
    first = capsys.readouterr().out.split("client secret (shown once): ")[1].strip()

    def login(secret: str) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": "civil-nanming",
            "client_secret": secret,
        }

    assert (await client.post(TOKEN, data=login(first))).status_code == 200
    assert await run(monkeypatch, gateway_url, "rotate-secret", "civil-nanming") == 0
    second = capsys.readouterr().out.split("(shown once): ")[1].split(";")[0]
    assert second != first
    for secret in (first, second):  # the old one within its grace of 24 hours
        assert (await client.post(TOKEN, data=login(secret))).status_code == 200
    rotate_now = ("rotate-secret", "civil-nanming", "--grace-hours", "0")
    assert await run(monkeypatch, gateway_url, *rotate_now) == 0
    third = capsys.readouterr().out.split("(shown once): ")[1].split(";")[0]
    for secret in (first, second):
        assert_problem(await client.post(TOKEN, data=login(secret)), 401, "invalid-client")
    assert (await client.post(TOKEN, data=login(third))).status_code == 200
    assert await run(monkeypatch, gateway_url, *add) == 1  # exists already


async def test_a_partners_signing_key_and_callback_credentials_are_set_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
    gateway_url: str,
    gateway_db: Database,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add = (
        "add-partner",
        "civil-keys",
        "--department",
        "civil",
        "--name",
        "民政厅",
        "--permission",
        "search",
        "--callback-url",
        "https://dci.civil.example/dci",
    )
    assert await run(monkeypatch, gateway_url, *add) == 0
    key = base64.b64encode(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    assert await run(monkeypatch, gateway_url, "signing-key", "civil-keys", "--key", key) == 0
    assert await run(monkeypatch, gateway_url, "signing-key", "civil-keys", "--key", "x") == 2
    assert await run(monkeypatch, gateway_url, "signing-key", "nobody", "--none") == 1
    token_url = "https://dci.civil.example/auth/token"
    credentials = (
        "callback-credentials",
        "civil-keys",
        "--token-url",
        token_url,
        "--as",
        "canbao",
        "--secret-stdin",
    )
    assert await run(monkeypatch, gateway_url, *credentials, stdin="from-the-department\n") == 0
    async with gateway_db.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(clients_table).where(clients_table.c.client_id == "civil-keys")
            )
        ).one()
    assert row.signing_public_key == key
    assert (row.callback_token_url, row.callback_client_id) == (token_url, "canbao")
    assert b"from-the-department" not in row.callback_secret_sealed  # sealed, not in clear
    sealer = settings_for(gateway_url).sealer()
    opened = sealer.open(
        row.callback_secret_sealed,
        key_id=row.callback_key_id,
        context=callback_context("civil-keys"),
    )
    assert opened == {"secret": "from-the-department"}
    capsys.readouterr()
