"""Logins are admitted before any password is hashed (canbao_gateway.login_gate): no more
Argon2 checks at once than the memory budget holds, and 429 `too-many-logins` with Retry-After,
unhashed, for more logins at once from one address or for one username than allowed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from canbao_gateway import accounts
from canbao_gateway.login_gate import MAX_PER_CLIENT, LoginGate
from tests.gateway.conftest import AddAccount, Clock, assert_problem, build_app, settings_for

TOKEN = "/api/v1/auth/token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Safety net only: a test that waits longer than this has failed (it would otherwise hang).
STUCK_S = 30.0


class Hashing:
    """The password checks as the test sees them: each one waits for `release`, so that the
    test decides when they finish and sees how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.now = 0
        self.peak = 0
        self.calls = 0
        self._lock = threading.Lock()

    def wrap(self, verify: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
        def held_verify(stored: str, password: str) -> bool:
            with self._lock:
                self.calls += 1
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                self.release.wait(STUCK_S)
                return verify(stored, password)
            finally:
                with self._lock:
                    self.now -= 1

        return held_verify


@pytest.fixture
def hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hashing]:
    held = Hashing()
    monkeypatch.setattr(accounts, "verify", held.wrap(accounts.verify))
    yield held
    held.release.set()  # never leave a worker thread waiting


@asynccontextmanager
async def started(app: FastAPI) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """The app's lifespan, and a client per client address."""
    clients: list[httpx.AsyncClient] = []

    def from_address(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    async with app.router.lifespan_context(app):
        try:
            yield from_address
        finally:
            for client in clients:
                await client.aclose()


async def login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(TOKEN, data={"username": username, "password": "guess"})


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a state of the worker threads and the gate (nothing there to await)."""
    async with asyncio.timeout(STUCK_S):
        while not condition():  # noqa: ASYNC110 - the state changes in worker threads too
            await asyncio.sleep(0.01)


async def test_concurrent_logins_never_hash_more_at_once_than_the_memory_budget_holds(
    gateway_url: str, test_clock: Clock, hashing: Hashing
) -> None:
    # 128 MiB for hashing, 64 MiB per Argon2id check (argon2-cffi's default): two at a time.
    settings = settings_for(gateway_url, login_hashing_memory_mib=128)
    assert accounts.HASH_MEMORY_KIB == 64 * 1024
    app = build_app(settings, test_clock)
    attempts = 8
    async with started(app) as from_address:
        gate: LoginGate = app.state.login_gate
        assert gate.hashes_at_once == 2
        logins = [
            asyncio.create_task(login(from_address(f"198.51.100.{i}"), f"user-{i}"))
            for i in range(attempts)
        ]
        # Every login is now either hashing or waiting its turn (or there were too many).
        await until(lambda: hashing.peak > 2 or (hashing.now == 2 and gate.waiting == 6))
        assert hashing.peak == 2
        hashing.release.set()
        responses = await asyncio.gather(*logins)
    assert [r.status_code for r in responses] == [401] * attempts
    assert hashing.calls == attempts and hashing.peak == 2


async def test_a_second_login_for_a_username_being_checked_is_refused_unhashed(
    gateway_url: str, test_clock: Clock, hashing: Hashing, add_account: AddAccount
) -> None:
    await add_account("wang-li", "s3cret")
    app = build_app(settings_for(gateway_url), test_clock)
    async with started(app) as from_address:
        first = asyncio.create_task(login(from_address("198.51.100.1"), "wang-li"))
        await until(lambda: hashing.now == 1)
        async with asyncio.timeout(STUCK_S):
            second = await login(from_address("198.51.100.2"), "wang-li")
        body = assert_problem(second, 429, "too-many-logins")
        assert second.headers["retry-after"] == str(body["retry_after"])
        assert int(second.headers["retry-after"]) >= 1
        assert hashing.calls == 1  # the refused login hashed nothing
        hashing.release.set()
        assert_problem(await first, 401, "invalid-credentials")


async def test_more_logins_at_once_from_one_address_are_refused_unhashed(
    gateway_url: str, test_clock: Clock, hashing: Hashing
) -> None:
    app = build_app(settings_for(gateway_url), test_clock)
    async with started(app) as from_address:
        hall = from_address("198.51.100.1")
        gate: LoginGate = app.state.login_gate
        admitted = [asyncio.create_task(login(hall, f"clerk-{i}")) for i in range(MAX_PER_CLIENT)]
        # As many hashing as may (3 with the default budget), the rest of the hall waiting.
        slots = gate.hashes_at_once
        assert slots < MAX_PER_CLIENT
        await until(lambda: hashing.now == slots and gate.waiting == MAX_PER_CLIENT - slots)
        async with asyncio.timeout(STUCK_S):
            refused = await login(hall, "one-more")
        assert_problem(refused, 429, "too-many-logins")
        assert "retry-after" in refused.headers
        # Another address is not held back by the hall's logins: it waits for a slot.
        other = asyncio.create_task(login(from_address("198.51.100.2"), "elsewhere"))
        await until(lambda: gate.waiting == MAX_PER_CLIENT - slots + 1)
        assert hashing.calls == slots  # the refused login hashed nothing
        hashing.release.set()
        responses = await asyncio.gather(*admitted, other)
    assert [r.status_code for r in responses] == [401] * (MAX_PER_CLIENT + 1)
