"""The survey service as the gateway reaches it: over HTTP (architecture.md: a synchronous call
only where a user waits for the answer), at `GATEWAY_SURVEY_URL`.

Every submission carries an Idempotency-Key (the client's, else one made here), so the one retry
after a transport failure, and a clerk's own retry after a 503, never store a collection twice:
survey answers a repeated key with the first collection. The household survey's calls (api.md
"Survey", survey_routes.py) go through `call`. Survey's problems (422 invalid-items, 409
idempotency-key-reused, task-changed, maker-checker…) reach the client unchanged, and so does its
503 `identity-unavailable` (a list it could not make); survey away or failing otherwise is 503
`survey-unavailable`.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import httpx
from fastapi import Request

from canbao_gateway.internal import InternalClient
from canbao_gateway.staff import Actor
from canbao_platform.problems import Problem

log = logging.getLogger(__name__)
TIMEOUT_S: Final = 5.0  # a submission writes and encrypts: more than a read
# A survey list streams a whole division from identity and seals it (a county: 500,000 people).
LIST_TIMEOUT_S: Final = 300.0
# A community ledger of thousands of rows is drawn as a PDF: seconds.
DOCUMENT_TIMEOUT_S: Final = 120.0
SURVEY_PREFIX: Final = "/internal/survey"
# Survey's own 5xx problems a client can act on (retry later): passed on, not hidden.
PASSED_ON_5XX: Final = frozenset({"/problems/identity-unavailable"})


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

    def server_error(self, response: httpx.Response) -> Problem:
        if response.status_code == 503 and _problem_type(response) in PASSED_ON_5XX:
            return self.passed_on(response)
        return self.unavailable()

    async def call(
        self,
        method: str,
        path: str,
        *,
        caller: Actor,
        time_limit_s: float = TIMEOUT_S,
        replayable: bool = True,
        prefix: str = SURVEY_PREFIX,
        **kwargs: Any,
    ) -> httpx.Response:
        """A call to survey's household-survey API (`path` under /internal/survey; `prefix`
        "/internal" for the collections') on behalf of `caller`: survey's answer, or its
        problem raised as the gateway's own."""
        response = await self._send(
            method,
            prefix + path,
            caller=caller,
            timeout=time_limit_s,
            replayable=replayable,
            **kwargs,
        )
        if response.status_code >= 400:
            raise self.passed_on(response)
        return response

    async def make_list(self, region_code: str, *, caller: Actor) -> Any:
        """POST /internal/survey/lists: survey streams the division from identity on behalf of
        the same member of staff, with a token for identity minted here (survey holds no
        signing key). Not replayed after a timeout: the list may be half made, and the
        reviewer's own retry adds only whom the first one missed."""
        headers = {"Canbao-Identity-Token": self.service_token(caller, audience="identity")}
        response = await self.call(
            "POST",
            "/lists",
            caller=caller,
            json={"region_code": region_code},
            headers=headers,
            time_limit_s=LIST_TIMEOUT_S,
            replayable=False,
        )
        return response.json()

    async def submit_collection(
        self, body: dict[str, Any], *, idempotency_key: str, caller: Actor
    ) -> Any:
        """POST /internal/collections on behalf of `caller` (the handler AAE011); survey's JSON
        answer (201), or its problem raised."""
        headers = {"Idempotency-Key": idempotency_key}
        response = await self._send(
            "POST",
            "/internal/collections",
            json=body,
            headers=headers,
            caller=caller,
            timeout=TIMEOUT_S,
        )
        if response.status_code >= 400:
            raise self.passed_on(response)
        return response.json()


def _problem_type(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["type"])
    except (ValueError, KeyError, TypeError):
        return None


async def survey_client(request: Request) -> SurveyClient:
    """The dependency: the running service's survey client (`async def`: auth.py says why)."""
    for component in request.app.state.components:
        if isinstance(component, SurveyClient):
            return component
    raise RuntimeError("the gateway runs without its survey client")
