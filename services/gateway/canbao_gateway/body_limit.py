"""Request body limits, enforced before the application reads a byte of the body, so before
authentication: an anonymous client cannot make the gateway buffer a body of any size.

An ASGI middleware: a declared Content-Length over the route's limit is refused at once; a body
without one (chunked) or longer than it declared is counted as it streams in and refused as
soon as it passes the limit. Either way the answer is 413 problem+json `body-too-large`, and the
rest of the body is never read. Every route has `default` (settings.py, max_body_bytes) unless
`ROUTE_LIMITS` gives its path prefix another."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canbao_gateway.problems import BodyTooLarge
from canbao_platform.problems import problem_response

# Path prefix → largest body in bytes, for routes that need more than the default (say, a batch
# upload); the longest matching prefix wins.
# A survey submission may carry the signed form's scan: 2 MiB, 2.7 MiB in base64 (survey_models).
SURVEY_UPLOAD: Final = 3 * 1024 * 1024
# A partner's batch streams through to identity and is never held (partner_routes.py): 10^6 rows
# of a department's table are ~100 MB; 1 GiB leaves room and still bounds an upload.
PARTNER_BATCH: Final = 1024 * 1024 * 1024
ROUTE_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "/api/v1/survey/tasks/": SURVEY_UPLOAD,
        "/api/v1/survey/discoveries": SURVEY_UPLOAD,
        "/api/v1/partners/": PARTNER_BATCH,
    }
)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, default: int, routes: Mapping[str, int] = ROUTE_LIMITS):
        self.app = app
        self.default = default
        self.routes = sorted(routes.items(), key=lambda route: len(route[0]), reverse=True)

    def limit_for(self, path: str) -> int:
        return next(
            (limit for prefix, limit in self.routes if path.startswith(prefix)), self.default
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
            return
        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _refuse(scope, receive, send, limit)
                    # The application stops reading as if the client had gone.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer; whatever the application says after it is moot
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            # Reading a body cut short fails inside the application (a "disconnect"); the
            # client has its 413 already.
            if not refused:
                raise


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one before we see it
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = problem_response(BodyTooLarge(limit), Request(scope))
    # The unread rest of the body makes the connection unusable for another request.
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
