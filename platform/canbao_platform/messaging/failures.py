"""What a failure means for a message: retry it, dead-letter it, or try a few times first.

* **transient**: the world is not ready (database or broker unreachable, connection dropped,
  a deadlock): retry the whole batch with capped exponential backoff, forever, committing
  nothing, so no message is lost however long the outage lasts;
* **permanent**: this message can never be applied as it is (it does not parse, fails the
  contract's validation, carries values the database refuses): dead-letter it with the reason
  and go on with the next one;
* **unknown**: anything else the handler raises (a bug, a race): retry it a bounded number of
  times, then dead-letter it with the exception's class and message, so one bad event cannot
  stop a partition and nothing is dropped silently (see style.md on cosmicpython's bus).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy import exc as sa

from canbao_platform.db import CONFLICT_SQLSTATES, error_chain, sqlstate


class PermanentError(Exception):
    """Raise from a handler when the message can never be applied: it is dead-lettered with
    this error's message as the reason, and the consumer goes on."""


class TransientError(Exception):
    """Raise from a handler when something it needs is briefly unavailable: the batch is
    retried with backoff and nothing is committed meanwhile."""


class Failure(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


# SQLSTATE classes that say "the server or the connection", never "this row": 08 connection
# exception, 53 insufficient resources, 57 operator intervention (admin shutdown, crash
# recovery, cannot connect now), 58 system error; and deadlock / serialization failure
# (CONFLICT_SQLSTATES), which succeed when run again.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58")

# Errors of the data itself. ValueError covers pydantic's ValidationError, JSON and UTF-8
# decoding errors and every error of `canbao_contracts` (MalformedEnvelope, InvalidIdNumber,
# MalformedChangeEvent are ValueErrors); DataError is PostgreSQL refusing a value (22xxx).
_PERMANENT: tuple[type[BaseException], ...] = (PermanentError, ValueError, sa.DataError)


def classify(error: BaseException, permanent: tuple[type[BaseException], ...] = ()) -> Failure:
    """Which kind of failure `error` is; `permanent` adds a service's own permanent errors."""
    if any(_is_transient(cause) for cause in error_chain(error)):
        return Failure.TRANSIENT
    if isinstance(error, _PERMANENT + permanent) or _is_data_exception(error):
        return Failure.PERMANENT
    return Failure.UNKNOWN


def _is_data_exception(error: BaseException) -> bool:
    """PostgreSQL refusing a value (SQLSTATE class 22: U+0000 in text or jsonb, a number out of
    range), which asyncpg's SQLAlchemy dialect may raise as a plain DBAPIError, not DataError:
    the same value is refused however often it is tried."""
    return (sqlstate(error) or "").startswith("22")


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, TransientError | OSError | KafkaError | sa.DisconnectionError):
        return True  # OSError includes ConnectionError and TimeoutError
    if isinstance(error, sa.OperationalError | sa.InterfaceError | sa.TimeoutError):
        return True
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, asyncpg.InterfaceError | asyncpg.PostgresConnectionError):
        return True
    code = getattr(error, "sqlstate", None)
    return isinstance(code, str) and (
        code[:2] in _TRANSIENT_SQLSTATE_CLASSES or code in CONFLICT_SQLSTATES
    )


def describe(error: BaseException, limit: int = 500) -> str:
    """A reason for the dead-letter header and table: the class and message, without the input
    values pydantic would echo (a citizen's data must not spread into headers)."""
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '<root>'}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
        text = f"ValidationError: {error.title}: {problems}"
    elif isinstance(error, sa.StatementError) and error.orig is not None:
        # Not str(error): SQLAlchemy appends the SQL's parameters, PostgreSQL's DETAIL the
        # offending key's values. The first line of the driver's message says enough.
        first_line = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
        text = f"{type(error).__name__}: {first_line}"
    else:
        message, name = str(error), type(error).__name__
        text = message if message.startswith(name) else f"{name}: {message}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with "equal jitter" (AWS architecture blog, "Exponential
    Backoff and Jitter"): many consumers retrying after one outage do not hit it in step, and
    each still waits at least half the step."""

    initial_s: float = 0.2
    cap_s: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        ceiling = min(self.cap_s, self.initial_s * self.factor ** min(attempt, 64))
        return random.uniform(ceiling / 2, ceiling)


# The runtime's defaults (module constants: a default argument must not be a call).
MESSAGE_RETRY = Backoff(0.1, 2.0)  # a handler's unknown error, a few times in a row
TRANSIENT_RETRY = Backoff(0.2, 30.0)  # database or broker away: the batch, forever
RESTART = Backoff(1.0, 60.0)  # a consumer that failed fatally, before its next start
