"""The gateway's OpenAPI document declares the errors it answers (api.md: "every endpoint is in
the gateway's OpenAPI document; errors are application/problem+json"), so that clients generated
from it, and tests/fuzz/test_gateway_schema.py, expect what comes."""

from __future__ import annotations

from typing import Any

import pytest

from canbao_gateway.app import create
from tests.gateway.conftest import PROBLEM_JSON, settings_for


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    document = create(settings_for("unused")).openapi()
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        if path.startswith("/api/")
        for method, operation in methods.items()
    ]


@pytest.mark.parametrize(
    ("method", "path", "operation"), operations(), ids=[f"{m} {p}" for m, p, _ in operations()]
)
def test_every_error_an_endpoint_answers_is_declared_as_problem_json(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    errors = {status: r for status, r in responses.items() if int(status) >= 400}
    for status, response in errors.items():
        assert list(response.get("content", {})) == [PROBLEM_JSON], f"{status} of {path}"
        schema = response["content"][PROBLEM_JSON]["schema"]
        assert {"type", "title", "status"} <= set(schema["required"])
    if operation.get("parameters") or operation.get("requestBody"):
        assert "422" in errors, "invalid parameters or body: 422 invalid-request"
    if operation.get("security"):  # behind a bearer token: 401 with its challenge (RFC 6750)
        assert errors["401"]["headers"]["WWW-Authenticate"]["required"] is True
        assert "403" in errors or path == "/api/v1/auth/me", "a role-gated endpoint"
    if operation.get("requestBody"):
        assert "400" in errors, "a body that cannot be parsed: 400 bad-request"
