"""The survey service as the gateway reaches it: over HTTP (architecture.md: a synchronous call
only where a user waits for the answer), at `GATEWAY_SURVEY_URL`.

Every submission carries an Idempotency-Key (the client's, else one made here), so the one retry
after a transport failure, and a clerk's own retry after a 503, never store a collection twice:
survey answers a repeated key with the first collection. Survey's problems (422 invalid-items,
409 idempotency-key-reused) reach the client unchanged; survey away or failing is 503
`survey-unavailable`.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import httpx
from fastapi import Request

from canbao_gateway.internal import InternalClient
from canbao_gateway.staff import Staff
from canbao_platform.problems import Problem

log = logging.getLogger(__name__)
TIMEOUT_S: Final = 5.0  # a submission writes and encrypts: more than a read


class SurveyUnavailable(Problem):
    def __init__(self) -> None:
        super().__init__(
            503,
            "survey-unavailable",
            "调查登记服务暂不可用，请稍后重试 (the survey service is unavailable)",
            "采集信息未保存；请用同一幂等键（Idempotency-Key）重新提交 (nothing was saved; retry)",
        )


class SurveyClient(InternalClient):
    name = "survey-client"
    audience = "survey"

    def unavailable(self) -> Problem:
        return SurveyUnavailable()

    async def submit_collection(
        self, body: dict[str, Any], *, idempotency_key: str, caller: Staff
    ) -> Any:
        """POST /internal/collections on behalf of `caller` (the handler AAE011); survey's JSON
        answer (201), or its problem raised."""
        headers = {"Idempotency-Key": idempotency_key}
        response = await self._send(
            "POST", "/internal/collections", json=body, headers=headers, caller=caller
        )
        if response.status_code >= 400:
            raise _passed_on(response)
        return response.json()


def _passed_on(response: httpx.Response) -> Problem:
    """Survey's problem as the gateway's own: same status, type, title, detail, extensions."""
    try:
        body = dict(response.json())
        slug = str(body.pop("type")).removeprefix("/problems/")
    except (ValueError, KeyError, TypeError):
        log.warning("survey answered %d without a problem document", response.status_code)
        return SurveyUnavailable()
    title, detail = body.pop("title", slug), body.pop("detail", None)
    body.pop("status", None), body.pop("instance", None)
    return Problem(response.status_code, slug, title, detail, **body)


def survey_client(request: Request) -> SurveyClient:
    """The dependency: the running service's survey client."""
    for component in request.app.state.components:
        if isinstance(component, SurveyClient):
            return component
    raise RuntimeError("the gateway runs without its survey client")
