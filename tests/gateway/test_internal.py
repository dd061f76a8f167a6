"""The gateway's HTTP client of the other services (internal.py): what keeps a call cheap."""

from __future__ import annotations

import asyncio

import pytest

from canbao_gateway.internal import LIMITS
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey import SurveyClient
from canbao_platform import service_tokens
from canbao_platform.problems import Problem


def test_connections_opened_at_a_busy_moment_are_kept_but_not_past_uvicorns_timeout() -> None:
    assert LIMITS.max_keepalive_connections == LIMITS.max_connections
    assert LIMITS.keepalive_expiry is not None and LIMITS.keepalive_expiry < 5  # uvicorn: 5 s


async def test_a_call_that_may_have_reached_the_service_is_sent_again_only_if_harmless() -> None:
    """A service that reads the request and hangs up: a read (or a submission with its
    client_id) is sent once more; a decision is not, for it may have been taken."""
    received: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key = service_tokens.private_key(service_tokens.DEVELOPMENT_PRIVATE_KEY)
    client = SurveyClient(f"http://127.0.0.1:{port}", signing_key=key)
    await client.start()
    staff = Staff("platform-wu", Role.PLATFORM, "5201")
    try:
        for replayable, sent in ((True, 2), (False, 1)):
            received.clear()
            with pytest.raises(Problem) as raised:
                await client.call(
                    "POST", "/tasks/x/review", caller=staff, json={}, replayable=replayable
                )
            assert (raised.value.slug, len(received)) == ("survey-unavailable", sent)
    finally:
        await client.stop()
        server.close()
        await server.wait_closed()
