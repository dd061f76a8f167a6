"""The gateway's HTTP client of another service's internal API (architecture.md: a synchronous
call only where a user waits for the answer): one `InternalClient` component per service, opened
in the lifespan. A transport failure is retried once (every call made through it is idempotent:
reads, and submissions that carry an Idempotency-Key or a client_id); a call that is not
(`replayable=False`: a decision, a survey list) is retried only when it never reached the
service. The service away or answering 5xx is the client's own 503 problem, never a stack trace.

Every call carries a service token signed for the called service on behalf of the staff member
the gateway is serving (canbao_platform.service_tokens): the service trusts the signature, never
a name in the body.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canbao_gateway.staff import Actor
from canbao_platform import service_tokens
from canbao_platform.problems import Problem

log = logging.getLogger(__name__)
# A clerk waits: the popup's budget is 20 ms p99 (bench/popup.py), so a service slower than this is
# as good as away.
TIMEOUT_S: Final = 2.0
RETRY_AFTER_S: Final = 0.1
# Keep-alive: every connection opened at a busy moment is kept for the next calls (httpx keeps 20
# of its 100 by default, so at 64 counters most calls would open a new connection), but for less
# time than uvicorn keeps an idle one open (5 s), so that we never send on one it is closing.
LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=100, keepalive_expiry=4.0
)
# Failures before a byte of the request left: safe to retry whatever the call does.
NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class InternalClient:
    """A component: one HTTP client per service, opened in the lifespan. `transport` lets tests
    reach the application in-process (httpx.ASGITransport) instead of over a port."""

    name = "internal-client"
    audience = ""  # the called service's name: the audience of its service tokens

    def __init__(
        self,
        base_url: str,
        *,
        signing_key: Ed25519PrivateKey,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.base_url, self._transport, self._timeout_s = base_url, transport, timeout_s
        self._signing_key = signing_key
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=self._transport,
            timeout=self._timeout_s,
            limits=LIMITS,
        )

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def health(self) -> dict[str, Any]:
        # Logins and collections work without identity and matching: not a readiness condition.
        return {"ready": self._http is not None}

    def unavailable(self) -> Problem:  # each service's own stable type
        return Problem(503, "unavailable", "服务暂不可用 (service unavailable)")

    def server_error(self, response: httpx.Response) -> Problem:
        """What the client hears of the service's 5xx: by default only that it is unavailable
        (its own words may say more than a client should read)."""
        return self.unavailable()

    def service_token(self, caller: Actor, audience: str | None = None) -> str:
        """A token for one call to `audience` (this client's service by default) on behalf of
        `caller` (canbao_platform.service_tokens): a member of staff, or a citizen's session
        (role `self`, username `<channel>:<device>`)."""
        acting = service_tokens.Caller(caller.username, caller.role.value, caller.scope)
        return service_tokens.issue(
            acting, audience=audience or self.audience, key=self._signing_key
        )

    def passed_on(self, response: httpx.Response) -> Problem:
        """The service's 4xx problem as the gateway's own: same status, type, title, detail and
        extensions (the service's words are for the client: they say what to fix)."""
        try:
            body = dict(response.json())
            slug = str(body.pop("type")).removeprefix("/problems/")
        except (ValueError, KeyError, TypeError):
            log.warning(
                "%s answered %d without a problem document", self.name, response.status_code
            )
            return self.unavailable()
        title, detail = body.pop("title", slug), body.pop("detail", None)
        body.pop("status", None), body.pop("instance", None)
        return Problem(response.status_code, slug, title, detail, **body)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        caller: Actor,
        headers: dict[str, str] | None = None,
        replayable: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        assert self._http is not None, f"the {self.name} is not started"
        token = self.service_token(caller)
        headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        for attempt in range(2):
            try:
                response = await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as error:
                log.warning(
                    "%s: unreachable (%s), attempt %d", self.name, type(error).__name__, attempt
                )
                # A call that may have reached the service is sent again only if doing it twice
                # is doing it once.
                if attempt == 1 or not (replayable or isinstance(error, NOT_SENT)):
                    raise self.unavailable() from None
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            if response.status_code >= 500:
                log.warning("%s: answered %d", self.name, response.status_code)
                raise self.server_error(response)
            return response
        raise AssertionError("unreachable")
