"""The surveyor roster as the platform reads it to make a team (roster.py): a county's roster is
its own surveyors and those of the city or province above it, the same people `assign` accepts
for the county's households (a shorter county_code puts a surveyor on every roster under it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import caller_headers


@pytest.fixture
async def client(survey_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with survey_app.router.lifespan_context(survey_app):
        transport = httpx.ASGITransport(app=survey_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://survey") as client:
            yield client


def staff(role: str) -> dict[str, str]:
    return caller_headers("survey", username=f"{role}-wu", role=role, scope="52")


async def test_a_countys_roster_holds_the_surveyors_of_the_divisions_above_it(
    client: httpx.AsyncClient,
) -> None:
    for username, county in (("province-team", "52"), ("city-team", "5201"),
                             ("nanming", "520102"), ("yunyan", "520103")):  # fmt: skip
        entry = {"username": username, "name": "调查员", "county_code": county,
                 "certificate_number": f"DC-{username}"}  # fmt: skip
        answer = await client.put(
            f"/internal/survey/surveyors/{username}", json=entry, headers=staff("county")
        )
        assert answer.status_code == 200, answer.text

    async def roster(region: str) -> list[str]:
        answer = await client.get(
            "/internal/survey/surveyors", params={"region": region}, headers=staff("platform")
        )
        assert answer.status_code == 200, answer.text
        return [surveyor["username"] for surveyor in answer.json()]

    assert await roster("520102") == ["province-team", "city-team", "nanming"]
    assert await roster("5201") == ["province-team", "city-team", "nanming", "yunyan"]
    assert await roster("52") == ["province-team", "city-team", "nanming", "yunyan"]
    assert await roster("5202") == ["province-team"]
