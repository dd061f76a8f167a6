"""Request bodies are limited per route before anything reads them, authentication included:
413 problem+json `body-too-large` (canbao_gateway.body_limit)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from canbao_gateway.tables import login_failures
from canbao_platform.db import Database
from tests.gateway.conftest import Clock, assert_problem, build_app, serve, settings_for

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/auth/me"
LIMIT = 64 * 1024
CHUNK = 16 * 1024
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Chunks:
    """A streamed body of `total` bytes (no Content-Length: chunked), that counts what the
    server pulled of it."""

    def __init__(self, total: int, head: bytes = b"username=wang-li&password=") -> None:
        self.total = total
        self.head = head
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head
        self.sent += len(self.head)
        while self.sent < self.total:
            self.sent += CHUNK
            yield b"x" * CHUNK


@pytest.fixture
async def small_limit(gateway_url: str, test_clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(gateway_url, max_body_bytes=LIMIT)
    async with serve(build_app(settings, test_clock)) as client:
        yield client


async def test_anonymous_oversized_body_with_content_length_is_refused(
    small_limit: httpx.AsyncClient, gateway_db: Database
) -> None:
    body = b"username=wang-li&password=" + b"x" * (4 * LIMIT)
    response = await small_limit.post(TOKEN, content=body, headers=FORM)
    problem = assert_problem(response, 413, "body-too-large")
    assert problem["limit"] == LIMIT
    async with gateway_db.engine.connect() as connection:
        # Refused before the login ran: no password was checked, no failure counted.
        assert await connection.scalar(sa.select(sa.func.count()).select_from(login_failures)) == 0


async def test_anonymous_oversized_chunked_body_is_refused_without_reading_it_all(
    small_limit: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = Chunks(total=64 * LIMIT)
    response = await small_limit.post(TOKEN, content=body, headers=FORM)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body-too-large")
    assert body.sent <= LIMIT + 2 * CHUNK  # the rest was never pulled from the client
    # The application's read cut short is the refusal, not an error.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_oversized_body_on_a_route_that_takes_none_is_refused_before_authentication(
    small_limit: httpx.AsyncClient,
) -> None:
    # No bearer token at all: the size is checked first, so no work is done for a stranger.
    response = await small_limit.post(
        "/api/v1/counter/collections", content=Chunks(total=4 * LIMIT), headers=FORM
    )
    assert_problem(response, 413, "body-too-large")


async def test_a_body_within_the_limit_goes_through(small_limit: httpx.AsyncClient) -> None:
    response = await small_limit.post(TOKEN, content=Chunks(total=LIMIT // 2), headers=FORM)
    assert_problem(response, 401, "invalid-credentials")


async def test_a_route_may_be_allowed_more_than_the_default(
    gateway_url: str, test_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("canbao_gateway.body_limit.ROUTE_LIMITS", {"/api/v1/auth/": 8 * LIMIT})
    settings = settings_for(gateway_url, max_body_bytes=LIMIT)
    async with serve(build_app(settings, test_clock)) as client:
        allowed = await client.post(TOKEN, content=Chunks(total=4 * LIMIT), headers=FORM)
        assert_problem(allowed, 401, "invalid-credentials")
        beyond = await client.post(TOKEN, content=Chunks(total=16 * LIMIT), headers=FORM)
        assert_problem(beyond, 413, "body-too-large")
        other = await client.post(
            "/api/v1/counter/collections", content=Chunks(total=4 * LIMIT), headers=FORM
        )
        assert_problem(other, 413, "body-too-large")
