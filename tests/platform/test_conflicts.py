"""A transaction that loses a race (deadlock, serialization failure) is run again by
`retried_on_conflict`; one that keeps losing, or a database away, is answered 503 unavailable
with Retry-After, never 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc

from canbao_platform.db import CONFLICT_ATTEMPTS, lost_a_race, retried_on_conflict, sqlstate
from canbao_platform.problems import install_problem_handlers


def lost(error: asyncpg.PostgresError) -> exc.DBAPIError:
    """The driver's error as SQLAlchemy raises it from a statement."""
    return exc.DBAPIError("UPDATE tasks SET state = $1", {}, error)


DEADLOCK = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
SERIALIZATION = asyncpg.exceptions.SerializationError("could not serialize access")
DUPLICATE = asyncpg.exceptions.UniqueViolationError("duplicate key value")


def test_the_sqlstate_is_found_however_deeply_the_server_answer_is_wrapped() -> None:
    class Rewrapped(Exception):
        pass

    try:
        raise Rewrapped("batch failed") from lost(DEADLOCK)
    except Rewrapped as wrapped:
        assert sqlstate(wrapped) == "40P01"
        assert lost_a_race(wrapped)
    assert sqlstate(lost(DUPLICATE)) == "23505"
    assert not lost_a_race(lost(DUPLICATE))
    assert sqlstate(ConnectionRefusedError("no server")) is None


@pytest.mark.parametrize("conflict", [DEADLOCK, SERIALIZATION], ids=["deadlock", "serialization"])
async def test_a_transaction_that_lost_a_race_is_run_again(
    conflict: asyncpg.PostgresError,
) -> None:
    runs: list[str] = []

    @retried_on_conflict
    async def assign(task: str) -> str:
        runs.append(task)
        if len(runs) < 3:
            raise lost(conflict)
        return f"{task} assigned"

    assert await assign("t1") == "t1 assigned"
    assert runs == ["t1", "t1", "t1"]


async def test_a_fault_of_the_statement_is_not_run_again() -> None:
    runs = 0

    @retried_on_conflict
    async def insert() -> None:
        nonlocal runs
        runs += 1
        raise lost(DUPLICATE)

    with pytest.raises(exc.DBAPIError):
        await insert()
    assert runs == 1


async def test_a_race_lost_every_time_is_given_up_and_answered_503() -> None:
    runs = 0
    app = FastAPI()
    install_problem_handlers(app)

    @retried_on_conflict
    async def assign() -> None:
        nonlocal runs
        runs += 1
        raise lost(DEADLOCK)

    @app.post("/assign")
    async def post_assign() -> None:
        await assign()

    @app.post("/broken")
    async def post_broken() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        busy, broken = await client.post("/assign"), await client.post("/broken")

    assert runs == CONFLICT_ATTEMPTS
    assert (busy.status_code, busy.headers["Retry-After"]) == (503, "1")
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.json()["type"] == "/problems/unavailable"
    assert (broken.status_code, broken.json()["type"]) == (500, "/problems/internal-error")
