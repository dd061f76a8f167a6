"""The DCI API's asynchronous half (dci_routes.py, dci_delivery.py): a search or a status request
is acknowledged at once, and its signed answer is posted to the partner's registered address —
a real HTTP server here, as a partner's system would run — once, retried with back-off while the
partner is away, erased once delivered, and never sent anywhere that was not registered."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from canbao_gateway import clients, dci
from canbao_gateway.clients import ClientKind, Permission
from canbao_gateway.dci_delivery import CallbackDelivery
from canbao_gateway.tables import dci_callbacks
from canbao_platform.db import Database
from canbao_platform.local.postgres import free_port
from tests.gateway import dci_standard
from tests.gateway.conftest import Clock, bearer, settings_for
from tests.gateway.test_dci import (
    FIELDS,
    INSURED,
    REGISTRY_KEY,
    SECRET,
    by_number,
    envelope,
    gateway_with,
)
from tests.gateway.test_partners import token
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db

ASYNC = "civil-async"
SEARCH = "/api/v1/partners/dci/registry/search"
STATUS = "/api/v1/partners/dci/registry/txn/status"
SYNC_STATUS = "/api/v1/partners/dci/registry/sync/txn/status"


class PartnerSystem:
    """A partner's DCI endpoint on a real port: records what it is sent, each callback held
    against the standard's document (dci_standard); answers 503 to the first `failing` posts.
    With `credentials` (client_id, secret) set, it secures its endpoints as the registry core API
    says: a bearer token of its own token API (`/auth/token`, client credentials), else 401."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.failures: list[dci_standard.NotConforming] = []
        self.failing = 0
        self.credentials: tuple[str, str] | None = None
        self.tokens_issued: list[str] = []
        self.arrived = asyncio.Event()
        app = Starlette(
            routes=[
                Route("/dci/{rest:path}", self._post, methods=["POST"]),
                Route("/auth/token", self._token, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/dci"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/token"

    async def _token(self, request: Request) -> JSONResponse:
        form = await request.form()
        if (form.get("client_id"), form.get("client_secret")) != self.credentials:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        self.tokens_issued.append(f"token-{len(self.tokens_issued) + 1}")
        return JSONResponse(
            {"access_token": self.tokens_issued[-1], "token_type": "Bearer", "expires_in": 3600}
        )

    async def _post(self, request: Request) -> JSONResponse:
        issued = {f"Bearer {token}" for token in self.tokens_issued}
        if self.credentials is not None and request.headers.get("authorization") not in issued:
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        if self.failing > 0:
            self.failing -= 1
            return JSONResponse({"error": "down for maintenance"}, status_code=503)
        body = await request.json()
        try:
            dci_standard.callback(request.url.path, body)
        except dci_standard.NotConforming as error:
            self.failures.append(error)
        self.received.append((request.url.path, body))
        self.arrived.set()
        return JSONResponse({"message": {"ack_status": "ACK"}})

    async def next(self, timeout_s: float = 10.0) -> tuple[str, dict[str, Any]]:
        await asyncio.wait_for(self.arrived.wait(), timeout_s)
        self.arrived.clear()
        if self.failures:
            raise self.failures[0]
        return self.received[-1]


@pytest.fixture
async def partner() -> AsyncIterator[PartnerSystem]:
    system = PartnerSystem()
    task = asyncio.create_task(system.server.serve())
    for _ in range(500):  # uvicorn says it has started by a flag only
        if system.server.started:
            break
        await asyncio.sleep(0.02)
    yield system
    system.server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if system.failures:  # a callback the standard does not allow fails the test that caused it
        raise system.failures[0]


@pytest.fixture
async def gateway(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    gateway_db: Database,
    partner: PartnerSystem,
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_db.engine.begin() as connection:
        await clients.register(
            connection,
            client_id=ASYNC,
            secret=SECRET,
            kind=ClientKind.PARTNER,
            name="民政",
            region="52",
            department="civil",
            permissions=frozenset({Permission.SEARCH}),
            fields=FIELDS,
            callback_urls=(partner.base,),
        )
    async for client in gateway_with(gateway_url, test_clock, harness, matching_db):
        yield client


def status_request(message_id: str, transaction: str) -> dict[str, Any]:
    return {
        "header": {
            "version": "1.0.0",
            "message_id": message_id,
            "message_ts": "2026-12-04T09:00:00Z",
            "action": "txn-status",
            "sender_id": ASYNC,
            "total_count": 1,
        },
        "message": {
            "transaction_id": transaction,
            "txnstatus_request": {
                "reference_id": "q-1",
                "txn_type": "search",
                "attribute_type": "transaction_id",
                "attribute_value": transaction,
            },
        },
    }


async def ack(gateway: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await gateway.post(
        path, json=body, headers=bearer(await token(gateway, ASYNC, SECRET))
    )
    assert answer.status_code == 200, answer.text
    message: dict[str, Any] = answer.json()["message"]
    return message


def verified(body: dict[str, Any]) -> dict[str, Any]:
    now = datetime.fromisoformat(body["header"]["message_ts"].replace("Z", "+00:00"))
    dci.verify(body["signature"], body["header"], body["message"], key=REGISTRY_KEY, now=now)
    return body


async def test_a_search_is_acknowledged_then_answered_at_the_registered_address_once(
    gateway: httpx.AsyncClient, partner: PartnerSystem, gateway_db: Database
) -> None:
    body = envelope(ASYNC, [by_number(INSURED)], message_id="a-1", transaction="t-a")
    acknowledged = await ack(gateway, SEARCH, body)
    assert acknowledged["ack_status"] == "ACK"
    path, answer = await partner.next()
    assert path == "/dci/on-search"
    verified(answer)
    assert answer["header"]["action"] == "on-search"
    assert answer["message"]["correlation_id"] == acknowledged["correlation_id"]
    [record] = answer["message"]["search_response"][0]["data"]["reg_records"]
    assert record["member_identifier"][0]["identifier_value"] == INSURED

    again = await ack(gateway, SEARCH, body)  # the same message: the same ack, no second answer
    assert again["correlation_id"] == acknowledged["correlation_id"]
    await asyncio.sleep(1.5)
    assert len(partner.received) == 1
    async with gateway_db.engine.connect() as connection:
        row = (await connection.execute(sa.select(dci_callbacks))).one()
    assert (row.state, row.attempts, row.body_sealed) == ("delivered", 1, None)  # erased

    status = await ack(gateway, STATUS, status_request("s-1", "t-a"))
    assert status["ack_status"] == "ACK"
    path, answer = await partner.next()
    assert path == "/dci/txn/on-status"
    txn = verified(answer)["message"]["txnstatus_response"]["txn_status"]
    assert txn["correlation_id"] == acknowledged["correlation_id"]
    assert [r["status"] for r in txn["search_response"]] == ["succ"]
    assert answer["message"]["meta"]["callbacks"][0]["state"] == "delivered"


async def test_callbacks_go_only_to_registered_addresses(
    gateway: httpx.AsyncClient, partner: PartnerSystem
) -> None:
    for index, uri in enumerate(
        [
            "http://169.254.169.254/latest/meta-data",  # a cloud's metadata service
            f"http://127.0.0.1:{partner.port}/admin/on-search",  # the host, outside the path
            f"http://127.0.0.1:{partner.port}/dci-evil/on-search",  # a longer path, not below it
            f"http://user@127.0.0.1:{partner.port}/dci/on-search",
            "file:///etc/passwd",
        ]
    ):
        body = envelope(ASYNC, [by_number(INSURED)], message_id=f"x-{index}")
        body["header"]["sender_uri"] = uri
        refused = await ack(gateway, SEARCH, body)
        assert (refused["ack_status"], refused["error"]["code"]) == (
            "ERR",
            "err.sender_uri.invalid",
        ), uri
    body = envelope(ASYNC, [by_number(INSURED)], message_id="x-ok")
    body["header"]["sender_uri"] = f"{partner.base}/custom/on-search"
    assert (await ack(gateway, SEARCH, body))["ack_status"] == "ACK"
    assert (await partner.next())[0] == "/dci/custom/on-search"
    assert len(partner.received) == 1


async def test_a_partner_that_is_away_gets_its_answer_later_and_txn_status_says_how_it_goes(
    gateway: httpx.AsyncClient,
    partner: PartnerSystem,
    gateway_db: Database,
    gateway_url: str,
) -> None:
    partner.failing = 2
    body = envelope(ASYNC, [by_number(INSURED)], message_id="b-1", transaction="t-b")
    acknowledged = await ack(gateway, SEARCH, body)
    sync = bearer(await token(gateway, ASYNC, SECRET))
    for _ in range(50):  # the first attempt, at once, fails
        async with gateway_db.engine.connect() as connection:
            row = (await connection.execute(sa.select(dci_callbacks))).one()
        if row.attempts:
            break
        await asyncio.sleep(0.1)
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
    seen = await gateway.post(SYNC_STATUS, json=status_request("s-2", "t-b"), headers=sync)
    [callback] = seen.json()["message"]["meta"]["callbacks"]
    assert (callback["state"], callback["attempts"], callback["last_error"]) == (
        "pending",
        1,
        "HTTP 503",
    )

    # Later, as the back-off says (30 s, then 60 s): another delivery loop, on its own clock.
    delivery = CallbackDelivery(gateway_db, settings_for(gateway_url).sealer())
    async with httpx.AsyncClient(follow_redirects=False) as http:
        start = datetime.now(UTC)
        assert await delivery.deliver_due(http, now=start + timedelta(seconds=10)) == 0  # not yet
        assert await delivery.deliver_due(http, now=start + timedelta(seconds=31)) == 1  # 503
        assert await delivery.deliver_due(http, now=start + timedelta(seconds=95)) == 1  # ok
    _, answer = partner.received[-1]
    assert answer["message"]["correlation_id"] == acknowledged["correlation_id"]
    async with gateway_db.engine.connect() as connection:
        row = (await connection.execute(sa.select(dci_callbacks))).one()
    assert (row.state, row.attempts, row.body_sealed) == ("delivered", 3, None)


async def test_callbacks_carry_a_token_of_the_partners_own_token_api(
    gateway: httpx.AsyncClient, partner: PartnerSystem, gateway_db: Database, gateway_url: str
) -> None:
    """The registry core API secures a partner's callback endpoints with a bearer token of the
    partner's token API: the registry gets one with the credentials the partner gave the agency,
    once, and refused credentials show in the callback's state."""
    partner.credentials = ("canbao-registry", "given-by-the-partner")
    sealer = settings_for(gateway_url).sealer()
    async with gateway_db.engine.begin() as connection:
        assert await clients.set_callback_credentials(
            connection,
            sealer,
            ASYNC,
            token_url=partner.token_url,
            as_client="canbao-registry",
            secret="wrong",
        )
    body = envelope(ASYNC, [by_number(INSURED)], message_id="tok-0", transaction="t-tok-0")
    assert (await ack(gateway, SEARCH, body))["ack_status"] == "ACK"
    for _ in range(50):
        async with gateway_db.engine.connect() as connection:
            error = await connection.scalar(sa.select(dci_callbacks.c.last_error))
        if error:
            break
        await asyncio.sleep(0.1)
    assert error == "token: HTTP 401" and partner.received == []

    async with gateway_db.engine.begin() as connection:
        await clients.set_callback_credentials(
            connection,
            sealer,
            ASYNC,
            token_url=partner.token_url,
            as_client="canbao-registry",
            secret="given-by-the-partner",
        )
    for index in (1, 2):
        body = envelope(
            ASYNC, [by_number(INSURED)], message_id=f"tok-{index}", transaction=f"t-tok-{index}"
        )
        assert (await ack(gateway, SEARCH, body))["ack_status"] == "ACK"
        path, answer = await partner.next()
        assert path == "/dci/on-search"
        assert answer["message"]["transaction_id"] == f"t-tok-{index}"
    assert partner.tokens_issued == ["token-1"]  # one token for both
