"""The gateway's HTTP client of the other services (internal.py): what keeps a call cheap."""

from __future__ import annotations

from canbao_gateway.internal import LIMITS


def test_connections_opened_at_a_busy_moment_are_kept_but_not_past_uvicorns_timeout() -> None:
    assert LIMITS.max_keepalive_connections == LIMITS.max_connections
    assert LIMITS.keepalive_expiry is not None and LIMITS.keepalive_expiry < 5  # uvicorn: 5 s
