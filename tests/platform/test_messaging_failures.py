"""What each kind of error means to the runtime: retry the batch, dead-letter the message, or
try a few times first; and that a dead-letter reason never quotes a citizen's data."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc, text

from canbao_contracts.envelope import MalformedEnvelope
from canbao_contracts.id_numbers import InvalidIdNumber, validate
from canbao_platform.db import Database
from canbao_platform.messaging import Backoff, PermanentError, TransientError
from canbao_platform.messaging.failures import Failure, classify, describe

ID_NUMBER = "11010519491231002X"  # the standard's example number: stands for any citizen's


class Person(BaseModel):
    birth_year: int


def invalid_person() -> ValidationError:
    try:
        Person.model_validate({"birth_year": ID_NUMBER})
    except ValidationError as error:
        return error
    raise AssertionError("validated")


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        KafkaConnectionError("broker gone"),
        RequestTimedOutError(),
        TransientError("the code table service restarts"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        exc.OperationalError("SELECT 1", {}, asyncpg.exceptions.CannotConnectNowError("starting")),
        exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
    ],
)
def test_the_world_not_being_ready_is_transient(error: BaseException) -> None:
    assert classify(error) is Failure.TRANSIENT


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("no birth date"),
        MalformedEnvelope("missing header ce_type"),
        InvalidIdNumber(validate("110105194912310021")),
        ValueError("not JSON"),
        exc.DataError("INSERT", {}, Exception("value too long")),
    ],
)
def test_a_message_that_can_never_be_applied_is_permanent(error: BaseException) -> None:
    assert classify(error) is Failure.PERMANENT


def test_anything_else_is_unknown_unless_the_service_says_it_is_permanent() -> None:
    class RegionNotInCodeTable(Exception):
        pass

    assert classify(RuntimeError("bug")) is Failure.UNKNOWN
    assert classify(RegionNotInCodeTable()) is Failure.UNKNOWN
    assert classify(RegionNotInCodeTable(), (RegionNotInCodeTable,)) is Failure.PERMANENT
    assert classify(invalid_person()) is Failure.PERMANENT


def test_a_validation_reason_says_where_and_what_but_not_the_value() -> None:
    reason = describe(invalid_person())
    assert reason.startswith("ValidationError: Person: birth_year: Input should be")
    assert ID_NUMBER not in reason


async def test_a_database_reason_leaves_out_the_parameters_and_the_detail(
    database: Database,
) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE people (id_number text PRIMARY KEY)"))
        await connection.execute(text("INSERT INTO people VALUES (:n)"), {"n": ID_NUMBER})
    with pytest.raises(exc.IntegrityError) as raised:
        async with database.engine.begin() as connection:
            await connection.execute(text("INSERT INTO people VALUES (:n)"), {"n": ID_NUMBER})
    assert ID_NUMBER in str(raised.value)  # SQLAlchemy's own message quotes it…
    reason = describe(raised.value)
    assert ID_NUMBER not in reason  # …the dead-letter reason does not
    assert reason.startswith("IntegrityError: ") and "people_pkey" in reason
    assert classify(raised.value) is Failure.UNKNOWN  # a race may resolve: retried first


async def test_a_value_postgresql_refuses_is_permanent(database: Database) -> None:
    """U+0000 in jsonb: asyncpg's dialect raises a plain DBAPIError (SQLSTATE 22P05), which
    must be dead-lettered at once, not retried as an unknown error."""
    with pytest.raises(exc.DBAPIError) as raised:
        async with database.engine.begin() as connection:
            await connection.execute(text("SELECT CAST(:v AS jsonb)"), {"v": '{"name": "\\u0000"}'})
    assert classify(raised.value) is Failure.PERMANENT


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial_s=0.2, cap_s=5.0)
    delays = [backoff.delay(attempt) for attempt in range(12)]
    assert 0.1 <= delays[0] <= 0.2
    assert all(2.5 <= d <= 5.0 for d in delays[6:])  # capped, yet never below half the cap
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jittered: retries do not align
