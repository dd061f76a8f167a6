"""Roles and region scopes on every endpoint built so far (api.md "Who calls"), and the
problem+json of each refusal. `/test/persons/{id_number}` stands in for the popup: a
personal-data read behind `require(..., person=person_by_id_number)` and the audit trail."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from canbao_gateway.auth import person_by_id_number, require
from canbao_gateway.staff import Role
from tests.gateway.conftest import PERSONAL_DATA_ROLES, assert_problem, bearer
from tests.gateway.people import (
    KUNMING_WUHUA,
    NANMING,
    YUNYAN,
    ZUNYI_HONGHUAGANG,
    citizen,
    legacy_15,
)

PERSON = f"/test/persons/{citizen(NANMING)}"
# endpoint → the roles that may use it
ENDPOINTS: dict[str, frozenset[Role]] = {
    "/api/v1/auth/me": frozenset(Role),
    "/api/v1/audit": frozenset({Role.AUDITOR}),
    PERSON: frozenset(PERSONAL_DATA_ROLES),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", list(ENDPOINTS))
async def test_every_role_on_every_endpoint(
    client: httpx.AsyncClient, token_for: Callable[..., str], role: Role, path: str
) -> None:
    response = await client.get(path, headers=bearer(token_for(role, scope="52")))
    if role in ENDPOINTS[path]:
        assert response.status_code == 200, response.text
    else:
        body = assert_problem(response, 403, "role-not-allowed")
        assert body["role"] == role.value


@pytest.mark.parametrize("path", list(ENDPOINTS))
async def test_every_endpoint_wants_a_token(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path), 401, "unauthenticated")


@pytest.mark.parametrize("role", PERSONAL_DATA_ROLES)
@pytest.mark.parametrize(
    ("scope", "region", "allowed"),
    [
        ("52", NANMING, True),  # province: all of Guizhou
        ("52", KUNMING_WUHUA, False),  # ... but not Yunnan
        ("5201", YUNYAN, True),  # Guiyang city: its districts
        ("5201", ZUNYI_HONGHUAGANG, False),  # ... not Zunyi
        ("520102", NANMING, True),  # Nanming district: its own people
        ("520102", YUNYAN, False),  # ... not the next district's
        # A township service centre of Nanming (9 digits; our convention, auth.py): the
        # residents of its county, whose region identity knows only to the county.
        ("520102003", NANMING, True),
        ("520102003", YUNYAN, False),  # ... not the next district's
        ("520102003001", NANMING, True),  # a community (12 digits) likewise
    ],
)
async def test_staff_see_people_of_their_region_only(
    client: httpx.AsyncClient, token_for: Callable[..., str],
    role: Role, scope: str, region: str, allowed: bool,
) -> None:  # fmt: skip
    token = token_for(role, scope=scope)
    response = await client.get(f"/test/persons/{citizen(region)}", headers=bearer(token))
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["region"] == region
    else:
        assert_problem(response, 403, "out-of-scope")


async def test_the_number_is_accepted_in_any_valid_form(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    token = token_for(Role.COUNTER, scope=NANMING)
    number = citizen(NANMING, sequence="001")  # check character
    for form in (number, number.lower(), legacy_15(NANMING)):
        response = await client.get(f"/test/persons/{form}", headers=bearer(token))
        assert response.status_code == 200, (form, response.text)


async def test_an_invalid_number_says_what_is_wrong(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    good = citizen(NANMING)
    typo = good[:-1] + ("0" if good[-1] != "0" else "1")
    response = await client.get(f"/test/persons/{typo}", headers=bearer(token_for(Role.COUNTER)))
    body = assert_problem(response, 422, "invalid-id-number")
    assert [defect["code"] for defect in body["defects"]] == ["bad_check_digit"]
    assert body["detail"]  # in Chinese, for the clerk


async def test_authentication_comes_before_checking_the_number(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/test/persons/123"), 401, "unauthenticated")


async def test_the_clerk_of_one_county_reads_her_own_identity(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    token = token_for(Role.COUNTER, scope=NANMING, username="wang-li")
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.json() == {"username": "wang-li", "role": "counter", "scope": NANMING}


def test_a_scoped_endpoint_must_say_why_it_reads() -> None:
    with pytest.raises(TypeError, match="purpose"):
        require(Role.COUNTER, person=person_by_id_number)
