"""The gateway's failures, each with its stable problem type (canbao_platform.problems).

Titles are in Chinese first: the counter page shows them to clerks. Some carry HTTP headers that
the standard asks for (`WWW-Authenticate` with a 401, RFC 6750 §3; `Retry-After` with a 429,
RFC 6585 §4); `install_header_handler` adds them to the problem+json response.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from canbao_platform.problems import PROBLEM_JSON, Problem, problem_response


class ProblemWithHeaders(Problem):
    headers: dict[str, str]


class Unauthenticated(ProblemWithHeaders):
    """No bearer token, or one that is malformed, forged, expired, not yet valid or revoked."""

    def __init__(self, slug: str, title: str) -> None:
        super().__init__(401, slug, title)
        # RFC 6750 §3.1: no error code when the request had no credentials at all.
        challenge = "Bearer" if slug == "unauthenticated" else 'Bearer error="invalid_token"'
        self.headers = {"WWW-Authenticate": challenge}


def missing_token() -> Unauthenticated:
    return Unauthenticated("unauthenticated", "请先登录 (a bearer token is required)")


def invalid_token() -> Unauthenticated:
    return Unauthenticated("invalid-token", "登录凭证无效，请重新登录 (invalid token)")


def expired_token() -> Unauthenticated:
    return Unauthenticated("token-expired", "登录已过期，请重新登录 (token expired)")


def revoked_token() -> Unauthenticated:
    """The account was disabled, or its password, role or scope changed, since the token was
    issued (tokens.py)."""
    return Unauthenticated("token-revoked", "登录凭证已失效，请重新登录 (token revoked)")


class InvalidCredentials(ProblemWithHeaders):
    def __init__(self) -> None:
        title = "用户名或密码错误 (wrong username or password)"
        super().__init__(401, "invalid-credentials", title)
        self.headers = {"WWW-Authenticate": "Bearer"}


class InvalidClient(ProblemWithHeaders):
    """Client credentials that open no active client (RFC 6749 §5.2 invalid_client). The Basic
    challenge only to a client that authenticated with HTTP Basic (§5.2): to a kiosk page's
    fetch with the form's fields it would make the browser prompt for a password."""

    def __init__(self, *, basic: bool = False) -> None:
        super().__init__(401, "invalid-client", "设备或应用凭证错误 (wrong client credentials)")
        self.headers = {"WWW-Authenticate": 'Basic realm="canbao"'} if basic else {}


class LoginThrottled(ProblemWithHeaders):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            429,
            "login-throttled",
            "登录失败次数过多，请稍后再试 (too many failed logins)",
            f"请在{retry_after_s}秒后重试 (retry in {retry_after_s} s)",
            retry_after=retry_after_s,
        )
        self.headers = {"Retry-After": str(retry_after_s)}


class Throttled(ProblemWithHeaders):
    """A request limit of throttling.py reached: 429 with Retry-After."""

    def __init__(self, slug: str, title: str, retry_after_s: int) -> None:
        super().__init__(
            429,
            slug,
            title,
            f"请在{retry_after_s}秒后重试 (retry in {retry_after_s} s)",
            retry_after=retry_after_s,
        )
        self.headers = {"Retry-After": str(retry_after_s)}


def self_service_throttled(retry_after_s: int) -> Throttled:
    return Throttled(
        "self-service-throttled",
        "操作过于频繁，请稍后再试 (too many self-service sessions)",
        retry_after_s,
    )


def verify_throttled(retry_after_s: int) -> Throttled:
    return Throttled(
        "verify-throttled", "查验过于频繁，请稍后再试 (too many verifications)", retry_after_s
    )


class TooManyLogins(ProblemWithHeaders):
    """More logins at once than the gateway checks for one address or one username, or than it
    has memory to hash (login_gate.py); refused before any password is hashed."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            429,
            "too-many-logins",
            "登录请求过多，请稍后再试 (too many logins at once)",
            f"请在{retry_after_s}秒后重试 (retry in {retry_after_s} s)",
            retry_after=retry_after_s,
        )
        self.headers = {"Retry-After": str(retry_after_s)}


class BodyTooLarge(Problem):
    """A request body over the route's limit (body_limit.py), refused before authentication."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            "body-too-large",
            "请求内容过大 (request body too large)",
            f"at most {limit} bytes",
            limit=limit,
        )


class RoleNotAllowed(Problem):
    def __init__(self, role: str) -> None:
        super().__init__(
            403, "role-not-allowed", "您的岗位无权使用此功能 (role not allowed)", role=role
        )


class OutOfScope(Problem):
    """The person lives outside the region the member of staff is responsible for."""

    def __init__(self) -> None:
        super().__init__(403, "out-of-scope", "此人不在您的管辖区域内 (person outside your region)")


class InvalidIdNumber(Problem):
    """An ID number that is not valid; `defects` says what is wrong, for the clerk."""

    def __init__(self, defects: list[dict[str, str]]) -> None:
        detail = "；".join(defect["message_zh"] for defect in defects)
        super().__init__(
            422,
            "invalid-id-number",
            "公民身份号码无效 (invalid ID number)",
            detail,
            defects=defects,
        )


class InvalidDocumentNumber(Problem):
    """The number of a document other than the citizen ID (passport, permits) that no such
    document has: blank, or longer than identity keeps (persons.py)."""

    def __init__(self, max_length: int) -> None:
        super().__init__(
            422,
            "invalid-document-number",
            "证件号码无效 (invalid document number)",
            f"证件号码应为1至{max_length}个字符 (1 to {max_length} characters)",
            max_length=max_length,
        )


def install_header_handler(app: FastAPI) -> None:
    """Serve `ProblemWithHeaders` as problem+json with its headers (the platform's handler, which
    would also serve it as a `Problem`, has no headers)."""

    async def on_problem_with_headers(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemWithHeaders)
        response = problem_response(exc, request)
        response.headers.update(exc.headers)
        return response

    app.add_exception_handler(ProblemWithHeaders, on_problem_with_headers)


class NotRegistered(Problem):
    """api.md: an ID number the registry does not know; the clerk may start a registration."""

    def __init__(self) -> None:
        super().__init__(
            404,
            "not-registered",
            "此人尚未登记 (not registered)",
            "可为其办理参保登记 (the clerk may start a registration)",
        )


class ProblemDocument(BaseModel):
    """An error as the gateway answers it (RFC 9457), for the OpenAPI document: the members every
    problem has, and its extensions (`defects`, `errors`, `role`…) alongside."""

    model_config = ConfigDict(extra="allow")

    type: str  # stable: /problems/<slug>
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


# Headers the standards ask for with some statuses (see the classes above).
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}
# Every endpoint behind a bearer token answers these (auth.py).
UNAUTHENTICATED = "unauthenticated, invalid-token, token-expired"
ROLE_NOT_ALLOWED = "role-not-allowed"


def problem_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: each status as problem+json (ProblemDocument), `descriptions`
    naming the problem types it may carry, so that the OpenAPI document declares every error a
    client can meet, in the media type it comes in. (Without this FastAPI declares its own
    validation error as application/json, which the gateway never answers.)"""
    schema = ProblemDocument.model_json_schema()
    declared: dict[int | str, dict[str, Any]] = {}
    for status, description in sorted(descriptions.items()):
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        declared[status] = response
    return declared
