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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
from fastapi import Request

from canbao_gateway.internal import InternalClient
from canbao_gateway.problems import NotRegistered
from canbao_gateway.staff import Actor
from canbao_platform.problems import Problem

log = logging.getLogger(__name__)
# A partner's batch or comparison: identity reads a batch as it streams and answers after its
# last row; a comparison asks up to 10,000 numbers at once.
BATCH_TIMEOUT_S: Final = 120.0


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


def reporting_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("reporting", "统计报表服务")


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

    async def send_batch(
        self,
        department: str,
        body: AsyncIterator[bytes],
        *,
        dataset: str | None,
        idempotency_key: str,
        content_type: str,
        caller: Actor,
    ) -> dict[str, Any]:
        """Stream a partner's batch to identity, which reads, checks and stages it as it comes
        (partner_batches.py): its Batch, or its problem raised. Never sent twice (the body is
        read once): a failure before identity answers is 503, and the partner sends again with
        the same Idempotency-Key. Identity answers once the last row is in: it may take long."""
        params = {"dataset": dataset} if dataset else {}
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": content_type}
        response = await self._send(
            "POST",
            f"/internal/partners/{department}/batches",
            content=body,
            params=params,
            headers=headers,
            caller=caller,
            timeout=BATCH_TIMEOUT_S,
            replayable=False,
        )
        if response.status_code >= 400:
            raise self.passed_on(response)
        batch: dict[str, Any] = response.json()
        return batch

    async def batch(
        self, department: str, batch_id: UUID, *, after: int, caller: Actor
    ) -> dict[str, Any]:
        response = await self._send(
            "GET",
            f"/internal/partners/{department}/batches/{batch_id}",
            params={"after": after},
            caller=caller,
        )
        if response.status_code >= 400:
            raise self.passed_on(response)
        batch: dict[str, Any] = response.json()
        return batch

    async def batch_rejects(
        self, department: str, batch_id: UUID, *, caller: Actor
    ) -> AsyncIterator[bytes]:
        """The refused lines as identity's CSV, streamed through; its problem raised before the
        first byte."""
        assert self._http is not None, f"the {self.name} is not started"
        path = f"/internal/partners/{department}/batches/{batch_id}/rejects.csv"
        request = self._http.build_request(
            "GET",
            path,
            headers={"Authorization": f"Bearer {self.service_token(caller)}"},
            timeout=BATCH_TIMEOUT_S,
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError:
            raise self.unavailable() from None
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise self.passed_on(response) if response.status_code < 500 else self.unavailable()

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return body()

    async def person_ids(self, id_numbers: list[str], *, caller: Actor) -> list[UUID | None]:
        """The person_id of each valid citizen number (in order; None: not registered)."""
        response = await self._send(
            "POST",
            "/internal/persons/lookup-many",
            json={"id_numbers": id_numbers},
            caller=caller,
            timeout=BATCH_TIMEOUT_S,
        )
        if response.status_code != 200:
            log.warning("identity answered %d to a lookup of many", response.status_code)
            raise self.unavailable()
        return [None if p is None else UUID(p) for p in response.json()["person_ids"]]

    async def numbers(self, person_ids: list[UUID], *, caller: Actor) -> dict[UUID, str]:
        """The citizen ID numbers of `person_ids` (those identity knows with one)."""
        return (await self.identifiers(person_ids, caller=caller)).numbers

    async def identifiers(self, person_ids: list[UUID], *, caller: Actor) -> Identifiers:
        """The citizen ID numbers and masked names of `person_ids`, those identity knows."""
        response = await self._send(
            "POST",
            "/internal/persons/identifiers",
            json={"person_ids": [str(p) for p in person_ids]},
            caller=caller,
            timeout=BATCH_TIMEOUT_S,
        )
        if response.status_code != 200:
            log.warning("identity answered %d to a lookup of numbers", response.status_code)
            raise self.unavailable()
        body = response.json()
        return Identifiers(
            numbers={UUID(k): v for k, v in body["numbers"].items()},
            masked_names={UUID(k): v for k, v in body["masked_names"].items()},
        )


@dataclass(frozen=True, slots=True)
class Identifiers:
    numbers: dict[UUID, str]
    masked_names: dict[UUID, str]


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
        response = await self._send(
            "GET", f"/internal/v1/persons/{person_id}/insurance", caller=caller
        )
        if response.status_code == 404:
            return {"person_id": str(person_id), "enrolments": [], "benefits": [], "as_of": None}
        if response.status_code != 200:
            log.warning("matching answered %d to an insurance record", response.status_code)
            raise self.unavailable()
        record: dict[str, Any] = response.json()
        return record

    async def verdicts(self, person_ids: list[UUID], *, caller: Actor) -> dict[UUID, Any]:
        """Matching's PersonVerdict of each of `person_ids` it has evaluated."""
        response = await self._send(
            "POST",
            "/internal/v1/verdicts/lookup",
            json={"person_ids": [str(p) for p in person_ids]},
            caller=caller,
            timeout=BATCH_TIMEOUT_S,
        )
        if response.status_code != 200:
            log.warning("matching answered %d to a lookup of verdicts", response.status_code)
            raise self.unavailable()
        return {UUID(item["person_id"]): item for item in response.json()}

    async def search(
        self,
        filter: dict[str, Any],
        *,
        page_size: int,
        page_number: int = 1,
        after: UUID | None = None,
        caller: Actor,
    ) -> dict[str, Any]:
        """Matching's VerdictSearchPage: the people its filter selects, one page (numbered, or
        the keyset page `after` a person_id)."""
        body: dict[str, Any] = {
            "filter": filter,
            "page_size": page_size,
            "page_number": page_number,
        }
        if after is not None:
            body["after"] = str(after)
        response = await self._send(
            "POST",
            "/internal/v1/verdicts/search",
            json=body,
            caller=caller,
            timeout=BATCH_TIMEOUT_S,
        )
        if response.status_code == 422:  # search-invalid: what the filter lacks
            raise self.passed_on(response)
        if response.status_code != 200:
            log.warning("matching answered %d to a search", response.status_code)
            raise self.unavailable()
        page: dict[str, Any] = response.json()
        return page


class ReportingClient(InternalClient):
    name = "reporting-client"
    audience = "reporting"

    def unavailable(self) -> Problem:
        return reporting_unavailable()

    async def quarterly(
        self, quarter: str, *, region: str, format: str, caller: Actor
    ) -> httpx.Response:
        """Reporting's quarterly table of `region`'s rows (its answer as it is: JSON or a file);
        its problems (a malformed or future quarter) passed on."""
        # The path segment as the client sent it, quoted: reporting judges what a quarter is.
        path = f"/internal/v1/reports/quarterly/{quote(quarter, safe='')}"
        response = await self._send(
            "GET", path, params={"region": region, "format": format}, caller=caller
        )
        if response.status_code in (404, 422):
            raise self.passed_on(response)
        if response.status_code != 200:
            log.warning("reporting answered %d to a quarterly table", response.status_code)
            raise self.unavailable()
        return response

    async def targets(
        self, year: int, *, region: str, caller: Actor, entered: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The year's coverage targets within `region` (the caller's scope); with `entered`, a
        division's new targets first. Reporting's problems passed on."""
        response = await self._send(
            "GET" if entered is None else "PUT",
            f"/internal/v1/reports/targets/{year}",
            json=entered,
            params={"region": region},
            caller=caller,
        )
        if response.status_code in (403, 422):
            raise self.passed_on(response)
        if response.status_code != 200:
            log.warning("reporting answered %d to targets", response.status_code)
            raise self.unavailable()
        body: dict[str, Any] = response.json()
        return body

    async def filing(
        self,
        quarter: str,
        *,
        region: str,
        caller: Actor,
        format: str = "json",
        signed: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """The quarter's filing of `region` (the caller's scope): its state, or the signed file
        `format` names; with `signed`, filed first. Reporting's problems passed on."""
        path = f"/internal/v1/reports/quarterly/{quote(quarter, safe='')}/filing"
        params = {"region": region} | ({"format": format} if signed is None else {})
        response = await self._send(
            "GET" if signed is None else "POST", path, json=signed, params=params, caller=caller
        )
        if response.status_code in (403, 404, 409, 422):
            raise self.passed_on(response)
        if response.status_code not in (200, 201):
            log.warning("reporting answered %d to a filing", response.status_code)
            raise self.unavailable()
        return response

    async def employers(
        self, unit_id: str | None, *, region: str, params: dict[str, Any], caller: Actor
    ) -> dict[str, Any]:
        """Reporting's employers leaving people out (`unit_id` None) or a page of one unit's
        employees owed a 92, within `region` (the caller's scope); its problems passed on."""
        path = "/internal/v1/reports/employers"
        if unit_id is not None:
            path += f"/{quote(unit_id, safe='')}"
        response = await self._send("GET", path, params=params | {"region": region}, caller=caller)
        if response.status_code in (403, 404, 422):
            raise self.passed_on(response)
        if response.status_code != 200:
            log.warning("reporting answered %d to employers", response.status_code)
            raise self.unavailable()
        body: dict[str, Any] = response.json()
        return body

    async def lists(
        self, name: str | None, *, region: str, params: dict[str, Any], caller: Actor
    ) -> dict[str, Any]:
        """Reporting's counts of the plans' lists (`name` None) or a page of one list's people,
        within `region` (the caller's scope); its problems passed on."""
        path = "/internal/v1/reports/lists" + ("" if name is None else f"/{quote(name, safe='')}")
        response = await self._send("GET", path, params=params | {"region": region}, caller=caller)
        if response.status_code in (403, 404, 422):
            raise self.passed_on(response)
        if response.status_code != 200:
            log.warning("reporting answered %d to the plans' lists", response.status_code)
            raise self.unavailable()
        body: dict[str, Any] = response.json()
        return body

    async def coverage(
        self, *, region: str, params: dict[str, Any], caller: Actor
    ) -> dict[str, Any]:
        """Reporting's coverage of `region` (the caller's scope) or a division within it; its
        problems passed on."""
        response = await self._send(
            "GET",
            "/internal/v1/reports/coverage",
            params=params | {"region": region},
            caller=caller,
        )
        if response.status_code in (403, 422):
            raise self.passed_on(response)
        if response.status_code != 200:
            log.warning("reporting answered %d to coverage", response.status_code)
            raise self.unavailable()
        body: dict[str, Any] = response.json()
        return body

    async def people(
        self, quarter: str, *, region: str, params: dict[str, Any], caller: Actor
    ) -> dict[str, Any]:
        """A page of the people behind a cell of `region`'s table (reporting's answer: person_id,
        city and what the verdict counted); its problems (not the caller's row, a malformed
        cell, quarter or cursor) passed on."""
        path = f"/internal/v1/reports/quarterly/{quote(quarter, safe='')}/people"
        response = await self._send("GET", path, params=params | {"region": region}, caller=caller)
        if response.status_code in (403, 404, 422):
            raise self.passed_on(response)
        if response.status_code != 200:
            log.warning("reporting answered %d to the people of a cell", response.status_code)
            raise self.unavailable()
        body: dict[str, Any] = response.json()
        return body


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


async def reporting_client(request: Request) -> ReportingClient:
    return _component(request, ReportingClient)
