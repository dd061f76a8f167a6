"""The reviewer's page (审核工作台) on the whole local stack (`make run`, tests/stack/
test_local_stack.py's Stack): the demo data flows to identity, matching and survey; through the
public API the grass-roots platform makes the survey list (demo-surveyor is on the roster: the
stack puts them there, else the county does), assigns two households to demo-surveyor and the
surveyor submits a visit for each.
Then, in a real browser (tests/stack/survey_browser.py), one submission goes through 初审 and
审定 on the page, and the other shows what the page refuses and how it says so."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from canbao_platform.local.postgres import free_port
from tests.stack.survey_browser import survey_page_refusals, survey_page_round_trip
from tests.stack.test_local_stack import SERVICES, Stack, free_port_run

# The demo flows in minutes on a loaded machine: survey learns who needs a survey from matching.
LISTED_WITHIN_S = 300
PHONE = "13812345678"


def token(client: httpx.Client, username: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/token", data={"username": username, "password": "demo"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": "Bearer " + answer.json()["access_token"]}


def open_households(client: httpx.Client, platform: dict[str, str]) -> dict[str, list[Any]]:
    """The province's waiting, unassigned tasks by household, after a list as the platform
    (again, until matching's verdicts have reached survey and there are two households)."""
    deadline = time.monotonic() + LISTED_WITHIN_S
    while True:
        made = client.post(
            "/api/v1/survey/lists", json={"region_code": "52"}, headers=platform, timeout=300
        )
        assert made.status_code == 201, made.text
        page = client.get(
            "/api/v1/survey/tasks",
            params={"region": "52", "state": "open", "limit": 200},
            headers=platform,
        )
        assert page.status_code == 200, page.text
        households: dict[str, list[Any]] = {}
        for task in page.json()["items"]:
            if task["channel"] == "survey" and task["household"]:
                households.setdefault(task["household"], []).append(task)
        if len(households) >= 2:
            return households
        assert time.monotonic() < deadline, f"no survey list within {LISTED_WITHIN_S} s"
        time.sleep(5)


def submitted_tasks(gateway: str) -> list[dict[str, Any]]:
    """Two tasks, of two households, in state submitted by demo-surveyor (phone collected)."""
    with httpx.Client(base_url=gateway, timeout=30) as client:
        platform, county = token(client, "demo-platform"), token(client, "demo-county")
        surveyor = token(client, "demo-surveyor")
        households = open_households(client, platform)

        roster = client.get("/api/v1/survey/surveyors", params={"region": "52"}, headers=county)
        assert roster.status_code == 200, roster.text
        if "demo-surveyor" not in [s["username"] for s in roster.json()]:
            entry = {
                "username": "demo-surveyor",
                "name": "演示调查员",
                "county_code": "52",  # the whole province's roster, like the account's scope
                "certificate_number": "DEMO-0001",
                "contracted": False,
                "active": True,
            }
            put = client.put("/api/v1/survey/surveyors/demo-surveyor", json=entry, headers=county)
            assert put.status_code == 200, put.text

        chosen = []
        for tasks in households.values():
            if len(chosen) == 2:
                break
            task = tasks[0]
            assigned = client.post(
                f"/api/v1/survey/tasks/{task['task_id']}/assign",
                json={"team": ["demo-surveyor"]},
                headers=platform,
            )
            if closed_meanwhile(assigned):
                continue
            assert assigned.status_code == 200, assigned.text
            assert task["task_id"] in assigned.json()["assigned"]
            visit = {
                "client_id": str(uuid.uuid4()),
                "visited_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "contact": "visit",
                "items": {"phone": PHONE},
                "declaration": {
                    "signed_by": "self",
                    "signed_on": datetime.now(UTC).date().isoformat(),
                },
                "note": "",
            }
            submitted = client.post(
                f"/api/v1/survey/tasks/{task['task_id']}/submit", json=visit, headers=surveyor
            )
            if closed_meanwhile(submitted):
                continue
            assert submitted.status_code == 201, submitted.text
            assert submitted.json()["state"] == "submitted"
            chosen.append(task)
        assert len(chosen) == 2, f"two of {len(households)} households' tasks stayed open"
        return chosen


def closed_meanwhile(answer: httpx.Response) -> bool:
    """The demo load is still arriving: a later source row can settle a person's status, and
    survey then closes their task as resolved (409 task-changed) — another household is taken."""
    if answer.status_code != 409:
        return False
    problem = answer.json()
    return problem["type"].endswith("/task-changed") and problem["task"]["state"] == "closed"


def task_state(gateway: str, task_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        answer = client.get(f"/api/v1/survey/tasks/{task_id}", headers=token(client, "demo-county"))
        assert answer.status_code == 200, answer.text
        task: dict[str, Any] = answer.json()
        return task


def passes_first_review(gateway: str, task_id: str) -> Callable[[], None]:
    """Another platform reviewer's 初审, through the API, while the page shows the task."""

    def act() -> None:
        with httpx.Client(base_url=gateway, timeout=30) as client:
            answer = client.post(
                f"/api/v1/survey/tasks/{task_id}/review",
                json={"decision": "pass", "comment": ""},
                headers=token(client, "demo-platform"),
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "first_reviewed"

    return act


def makes_surveyor_a_county_approver(postgres_port: int) -> Callable[[], None]:
    """demo-surveyor moves post to the county agency, with the administrators' command
    (canbao_gateway.manage move-staff): same account, same name in every decision."""

    def move() -> None:
        database = f"postgresql+asyncpg://canbao@127.0.0.1:{postgres_port}/gateway"
        moved = subprocess.run(
            [
                sys.executable,
                "-m",
                "canbao_gateway.manage",
                "move-staff",
                "demo-surveyor",
                "--role",
                "county",
                "--scope",
                "52",
            ],
            env={**os.environ, "GATEWAY_DATABASE_URL": database, "CANBAO_ENV": "development"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert moved.returncode == 0, moved.stderr
        assert "moved demo-surveyor: county" in moved.stdout

    return move


@pytest.mark.timeout(1200)
def test_reviewers_pass_and_approve_a_household_survey_on_the_page() -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-survey-page-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the `postgres` user when we are root
        postgres_port, gateway_port = free_port(), free_port_run(len(SERVICES) + 2)
        gateway = f"http://127.0.0.1:{gateway_port}"
        stack = Stack(Path(tmp) / "state", postgres_port, gateway_port)
        try:
            stack.wait_for("Where to look")
            stack.wait_for(f"{gateway}/survey ", within_s=30)  # the page, among where to look
            first, second = submitted_tasks(gateway)

            survey_page_round_trip(gateway, first["task_id"], first["region_code"])
            approved = task_state(gateway, first["task_id"])
            assert approved["state"] == "approved"
            decisions = approved["submission"]["decisions"]
            assert [(d["stage"], d["decision"], d["decided_by"]) for d in decisions] == [
                ("review", "pass", "demo-platform"),
                ("approve", "approve", "demo-county"),
            ]

            survey_page_refusals(
                gateway,
                second["task_id"],
                second["region_code"],
                pass_behind_the_page=passes_first_review(gateway, second["task_id"]),
                make_surveyor_a_county_approver=makes_surveyor_a_county_approver(postgres_port),
            )
            # Only the decision taken through the API stands: the page's were all refused.
            refused = task_state(gateway, second["task_id"])
            assert refused["state"] == "first_reviewed"
            assert [d["decided_by"] for d in refused["submission"]["decisions"]] == [
                "demo-platform"
            ]
            assert stack.interrupt() == 0
        finally:
            stack.abandon()
