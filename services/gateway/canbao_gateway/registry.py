"""Identity and matching as the gateway reads them: over HTTP, their internal APIs
(architecture.md: a synchronous call only where a user waits), at `GATEWAY_IDENTITY_URL` and
`GATEWAY_MATCHING_URL`.

Identity is asked by ID number in the request body (`POST /internal/persons/lookup`): numbers
never travel in URLs between services, so they stay out of access logs. Matching is asked by
person_id. Both reads are idempotent, so a transport failure is retried once; a service away or
failing is 503 `identity-unavailable` / `matching-unavailable`, never a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, TypeVar
from uuid import UUID

import httpx
from fastapi import Request

from canbao_gateway.problems import NotRegistered
from canbao_platform.problems import Problem

log = logging.getLogger(__name__)
# A clerk waits: the popup's budget is 20 ms p99 (issue 7), so a service slower than this is
# as good as away.
TIMEOUT_S: Final = 2.0
RETRY_AFTER_S: Final = 0.1


class ServiceUnavailable(Problem):
    def __init__(self, service: str, title_zh: str) -> None:
        super().__init__(
            503,
            f"{service}-unavailable",
            f"{title_zh}暂不可用，请稍后重试 (the {service} service is unavailable)",
            service=service,
        )


def identity_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("identity", "人员身份服务")


def matching_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("matching", "参保状态服务")


class InternalClient:
    """A component: one HTTP client per service, opened in the lifespan. `transport` lets tests
    reach the application in-process (httpx.ASGITransport) instead of over a port."""

    name = "internal-client"

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.base_url, self._transport, self._timeout_s = base_url, transport, timeout_s
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.base_url, transport=self._transport, timeout=self._timeout_s
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

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert self._http is not None, f"the {self.name} is not started"
        for attempt in range(2):
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                log.warning(
                    "%s: unreachable (%s), attempt %d", self.name, type(error).__name__, attempt
                )
                if attempt == 1:
                    raise self.unavailable() from None
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            if response.status_code >= 500:
                log.warning("%s: answered %d", self.name, response.status_code)
                raise self.unavailable()
            return response
        raise AssertionError("unreachable")


class IdentityClient(InternalClient):
    name = "identity-client"

    def unavailable(self) -> Problem:
        return identity_unavailable()

    async def person(self, id_number: str, document_type: str = "01") -> dict[str, Any]:
        """Identity's PersonRecord (golden record in clear, gaps, deceased…); 404 not-registered
        for a number identity does not know."""
        body = {"id_number": id_number, "document_type": document_type}
        response = await self._send("POST", "/internal/persons/lookup", json=body)
        if response.status_code == 404:
            raise NotRegistered()
        if response.status_code != 200:
            log.warning("identity answered %d to a lookup", response.status_code)
            raise self.unavailable()
        record: dict[str, Any] = response.json()
        return record


class MatchingClient(InternalClient):
    name = "matching-client"

    def unavailable(self) -> Problem:
        return matching_unavailable()

    async def verdict(self, person_id: UUID) -> dict[str, Any] | None:
        """Matching's PersonVerdict (`in_scope`, `verdict`, `as_of`); None while matching has no
        verdict yet (it has not heard of the person, has not evaluated them, or the person was
        just merged and identity already answers with the survivor)."""
        response = await self._send("GET", f"/internal/v1/verdicts/{person_id}")
        if response.status_code in (404, 409):
            return None
        if response.status_code != 200:
            log.warning("matching answered %d to a verdict", response.status_code)
            raise self.unavailable()
        verdict: dict[str, Any] = response.json()
        return verdict


T = TypeVar("T")


def _component(request: Request, kind: type[T]) -> T:
    for component in request.app.state.components:
        if isinstance(component, kind):
            return component
    raise RuntimeError(f"the gateway runs without its {kind.__name__}")


def identity_client(request: Request) -> IdentityClient:
    return _component(request, IdentityClient)


def matching_client(request: Request) -> MatchingClient:
    return _component(request, MatchingClient)
