"""Identity and matching as the gateway reads them: over HTTP, their internal APIs
(architecture.md: a synchronous call only where a user waits), at `GATEWAY_IDENTITY_URL` and
`GATEWAY_MATCHING_URL`.

Identity is asked by ID number in the request body (`POST /internal/persons/lookup`): numbers
never travel in URLs between services, so they stay out of access logs; or by its own opaque
person_id (`GET /internal/persons/{person_id}`). Matching is asked by
person_id. Both reads are idempotent, so a transport failure is retried once; a service away or
failing is 503 `identity-unavailable` / `matching-unavailable`, never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar
from uuid import UUID

from fastapi import Request

from canbao_gateway.internal import InternalClient
from canbao_gateway.problems import NotRegistered
from canbao_gateway.staff import Actor
from canbao_platform.problems import Problem

log = logging.getLogger(__name__)


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


class IdentityClient(InternalClient):
    name = "identity-client"
    audience = "identity"

    def unavailable(self) -> Problem:
        return identity_unavailable()

    async def person(
        self, id_number: str, document_type: str = "01", *, caller: Actor
    ) -> dict[str, Any]:
        """Identity's PersonRecord (golden record in clear, gaps, deceased…); 404 not-registered
        for a number identity does not know."""
        body = {"id_number": id_number, "document_type": document_type}
        response = await self._send("POST", "/internal/persons/lookup", json=body, caller=caller)
        if response.status_code == 404:
            raise NotRegistered()
        if response.status_code != 200:
            log.warning("identity answered %d to a lookup", response.status_code)
            raise self.unavailable()
        record: dict[str, Any] = response.json()
        return record

    async def person_by_id(self, person_id: UUID, *, caller: Actor) -> dict[str, Any]:
        """Identity's PersonRecord of `person_id` (an opaque id: fine in a URL); 404
        not-registered for an id identity does not know, or one merged into another."""
        response = await self._send("GET", f"/internal/persons/{person_id}", caller=caller)
        if response.status_code == 404:
            raise NotRegistered()
        if response.status_code != 200:
            log.warning("identity answered %d to a lookup by person_id", response.status_code)
            raise self.unavailable()
        record: dict[str, Any] = response.json()
        return record


class MatchingClient(InternalClient):
    name = "matching-client"
    audience = "matching"

    def unavailable(self) -> Problem:
        return matching_unavailable()

    async def verdict(self, person_id: UUID, *, caller: Actor) -> dict[str, Any] | None:
        """Matching's PersonVerdict (`in_scope`, `verdict`, `as_of`); None while matching has no
        verdict yet (it has not heard of the person, has not evaluated them, or the person was
        just merged and identity already answers with the survivor)."""
        response = await self._send("GET", f"/internal/v1/verdicts/{person_id}", caller=caller)
        if response.status_code in (404, 409):
            return None
        if response.status_code != 200:
            log.warning("matching answered %d to a verdict", response.status_code)
            raise self.unavailable()
        verdict: dict[str, Any] = response.json()
        return verdict

    async def insurance(self, person_id: UUID, *, caller: Actor) -> dict[str, Any]:
        """Matching's InsuranceRecord: the person's enrolments and benefits (the proof of
        insurance); empty lists while matching has not heard of the person."""
        response = await self._send("GET", f"/internal/v1/persons/{person_id}/insurance",
                                    caller=caller)  # fmt: skip
        if response.status_code == 404:
            return {"person_id": str(person_id), "enrolments": [], "benefits": [], "as_of": None}
        if response.status_code != 200:
            log.warning("matching answered %d to an insurance record", response.status_code)
            raise self.unavailable()
        record: dict[str, Any] = response.json()
        return record


T = TypeVar("T")


def _component(request: Request, kind: type[T]) -> T:
    for component in request.app.state.components:
        if isinstance(component, kind):
            return component
    raise RuntimeError(f"the gateway runs without its {kind.__name__}")


# `async def`: a plain `def` dependency runs in FastAPI's thread pool (auth.py).
async def identity_client(request: Request) -> IdentityClient:
    return _component(request, IdentityClient)


async def matching_client(request: Request) -> MatchingClient:
    return _component(request, MatchingClient)
