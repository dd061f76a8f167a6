"""The gateway's failures, each with its stable problem type (canbao_platform.problems).

Titles are in Chinese first: the counter page shows them to clerks. Some carry HTTP headers that
the standard asks for (`WWW-Authenticate` with a 401, RFC 6750 §3; `Retry-After` with a 429,
RFC 6585 §4); `install_header_handler` adds them to the problem+json response.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from canbao_platform.problems import Problem, problem_response


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
        super().__init__(413, "body-too-large", "请求内容过大 (request body too large)",
                         f"at most {limit} bytes", limit=limit)  # fmt: skip


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
        super().__init__(422, "invalid-id-number", "公民身份号码无效 (invalid ID number)", detail,
                         defects=defects)  # fmt: skip


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
        super().__init__(404, "not-registered", "此人尚未登记 (not registered)",
                         "可为其办理参保登记 (the clerk may start a registration)")  # fmt: skip
