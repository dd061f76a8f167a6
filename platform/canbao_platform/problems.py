"""Errors as RFC 9457 problem details, each failure kind with its own stable `type`.

A route raises `Problem(...)` (or one of its named subclasses); the handlers installed by
`install_problem_handlers` turn it, FastAPI's validation errors and anything unexpected into
`application/problem+json`. Nothing leaks a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from canbao_contracts.collected_items import ItemDefect
from canbao_platform.messaging.failures import Failure, classify

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error a client can act on. `slug` becomes the stable type `/problems/<slug>`."""

    def __init__(
        self, status: int, slug: str, title: str, detail: str | None = None, **extensions: Any
    ) -> None:
        super().__init__(title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        return body | self.extensions


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON)


_HTTP_SLUGS = {
    400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 429: "too-many-requests",
    503: "unavailable",
}  # fmt: skip


class InvalidItems(Problem):
    """Collected values that break `canbao_contracts.collected_items`' rules, answered alike by
    every service that checks them (the gateway before forwarding, survey before storing):
    `errors` names each field (`item`, `code`, `label`, `kind`, messages in Chinese and
    English), never its value."""

    def __init__(self, defects: Sequence[ItemDefect]) -> None:
        detail = "；".join(defect.message_zh for defect in defects)
        super().__init__(
            422,
            "invalid-items",
            "采集信息有误 (invalid collected items)",
            detail,
            errors=[defect.as_dict() for defect in defects],
        )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = _HTTP_SLUGS.get(exc.status_code, f"http-{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            Problem(exc.status_code, slug, slug.replace("-", " "), detail), request
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "kind": e.get("type")}
            for e in exc.errors()
        ]
        problem = Problem(
            422, "invalid-request", "请求内容不符合要求 (invalid request)", errors=errors
        )
        return problem_response(problem, request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its class only: the message could carry personal data.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        if classify(exc) is Failure.TRANSIENT:  # the database away or a conflict that persisted
            busy = Problem(503, "unavailable", "服务暂不可用 (service unavailable)")
            response = problem_response(busy, request)
            response.headers["Retry-After"] = "1"
            return response
        problem = Problem(500, "internal-error", "内部错误 (internal error)")
        return problem_response(problem, request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
