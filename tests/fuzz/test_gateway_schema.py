"""The gateway's public HTTP interface (api.md) fuzzed with schemathesis against its own OpenAPI
document, as each staff role and without a token, with the whole system behind it
(tests/fuzz/system.py): whatever a client sends, the gateway never answers 5xx, every answer is
one its document declares (status, content type, schema), and every error is problem+json
(RFC 9457) with a stable type.

Generated values are sometimes replaced by the real people of the seeded population (their ID
numbers in any valid form, their person_id), so that requests reach the records, the verdicts
and survey, not only the validation of random numbers.

A few hundred requests in `make test`; `make fuzz-api` runs the same with
CANBAO_FUZZ_API_EXAMPLES raised (over 10,000 requests) and prints the tally."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Final

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from canbao_gateway import tokens
from canbao_gateway.clock import utc_now
from canbao_gateway.staff import Role, Staff
from tests.fuzz.system import Resident, RunningSystem
from tests.fuzz.tally import Tally
from tests.gateway.conftest import settings_for

# Examples per operation, role and generation mode (positive and negative): the operations
# with few possible inputs stop earlier.
EXAMPLES: Final = int(os.environ.get("CANBAO_FUZZ_API_EXAMPLES", "4"))
PROBLEM_JSON: Final = "application/problem+json"
# A token outlives the longest run (tokens.py: 15 minutes in production).
TOKEN_LIFETIME: Final = timedelta(hours=4)
ANONYMOUS: Final = "no token"
# schemathesis' own negative-case generation draws from `random` inside its strategies.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)


def is_problem_json(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """api.md: every error is application/problem+json (RFC 9457) with a stable `type`."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == PROBLEM_JSON, f"{response.status_code} answered as {content_type!r}"
    body = response.json()
    assert isinstance(body, dict), "a problem document is a JSON object"
    assert str(body.get("type", "")).startswith("/problems/"), f"no stable type: {body!r}"
    assert body.get("status") == response.status_code, "`status` differs from the HTTP status"
    assert body.get("title"), "a problem has a title"
    assert "Traceback" not in response.text
    return True


CHECKS: Final = [not_a_server_error, status_code_conformance, content_type_conformance,
                 response_headers_conformance, response_schema_conformance]  # fmt: skip


def id_number_forms(number: str) -> list[str]:
    """api.md: numbers in URLs are accepted in any valid form (15 or 18 digits, lower-case x)."""
    forms = [number, number.lower()]
    if number[6:8] == "19":  # the 15-digit form of one born in the 1900s
        forms.append(number[:6] + number[8:17])
    return forms


# What a clerk collects for a known person (as tests/survey's COLLECTED), so that some
# collections pass the gateway's checks and reach survey.
VALID_ITEMS: Final = (
    {"phone": "13812345678"},
    {"phone": "0851-85551234", "residence_address": "贵州省贵阳市南明区花果园街道1号"},
)


def with_resident(
    case: Case, resident: Resident, number: str, items: dict[str, str] | None = None
) -> Case:
    """The case about a real person: their number wherever the request names one, their
    person_id where it names a person, and `items` (unless None) as the collected items."""
    real = case.derive()
    if "id_number" in (real.path_parameters or {}):
        real.path_parameters = {**real.path_parameters, "id_number": number}
    if "id_number" in (real.query or {}):
        real.query = {**real.query, "id_number": number}
    if isinstance(real.body, dict):
        body = dict(real.body)
        for field, value in (("id_number", number), ("person_id", str(resident.person_id))):
            if field in body:
                body[field] = value
        if items is not None and "items" in body:  # a collection a clerk could really make
            reasons = (
                {"resolved_reasons": body["resolved_reasons"]} if "resolved_reasons" in body else {}
            )
            body = {
                "id_number": number,
                "person_id": str(resident.person_id),
                "items": items,
                **reasons,
            }
        real.body = body
    return real


def real_people(residents: list[Resident]) -> Any:
    """The `flatmap_case` hook: a generated case, or (as often) the same case about a resident."""
    pick = st.sampled_from(residents).flatmap(
        lambda r: st.tuples(
            st.just(r),
            st.sampled_from(id_number_forms(r.id_number)),
            st.sampled_from([None, *VALID_ITEMS]),
        )
    )

    def flatmap_case(context: schemathesis.HookContext, case: Case) -> Any:
        return st.one_of(st.just(case), pick.map(lambda chosen: with_resident(case, *chosen)))

    return flatmap_case


@pytest.fixture(scope="module")
def gateway_schema(fuzzed_system: RunningSystem) -> schemathesis.BaseSchema:
    assert fuzzed_system.residents, "the seeded population registered nobody"
    schema = schemathesis.openapi.from_url(f"{fuzzed_system.base_url}/openapi.json")
    schema.hook(real_people(fuzzed_system.residents))
    return schema


def bearer_of(role: Role | None) -> dict[str, str]:
    if role is None:
        return {}
    staff = Staff(username=f"fuzz-{role.value}", role=role, scope="52")  # the whole province
    key = settings_for("unused").jwt_key()
    token = tokens.issue(staff, version=0, key=key, now=utc_now(), lifetime=TOKEN_LIFETIME)
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("role", [*Role, None], ids=[*(r.value for r in Role), "anonymous"])
def test_every_generated_request_is_answered_as_the_document_declares(
    role: Role | None, fuzzed_system: RunningSystem, gateway_schema: Any, tally: Tally
) -> None:
    who, headers = role.value if role else ANONYMOUS, bearer_of(role)
    failing: set[tuple[str, str, str]] = set()
    with requests.Session() as session:
        for result in gateway_schema.get_all_operations():
            operation = result.ok()
            if role is not None and not operation.definition.raw.get("security"):
                continue  # open endpoints (login, health): once, by the anonymous caller

            def send(case: Case) -> None:
                response = case.call(
                    base_url=fuzzed_system.base_url, session=session, headers=headers, timeout=30
                )
                tally.sent(who, response.status_code)
                try:
                    case.validate_response(
                        response, checks=CHECKS, additional_checks=[is_problem_json]
                    )
                except FailureGroup as group:
                    curl = case.as_curl_command(base_url=fuzzed_system.base_url)
                    label, found = case.operation.label, list(group.exceptions)
                    failing.update(tally.failed(label, who, found, curl))

            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                # Every failure is tallied and the run goes on, so a long run counts them all;
                # no shrinking, for the same reason.
                run = settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(given(case=operation.as_strategy(generation_mode=mode))(send))
                try:
                    run()
                except Unsatisfiable:
                    # No input to negate (`GET /api/v1/auth/me`): nothing to send in that mode.
                    assert mode is GenerationMode.NEGATIVE, operation.label
    assert not failing, "\n".join(tally.described(key) for key in sorted(failing))
