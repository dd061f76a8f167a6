"""Survey target lists (调查对象名单, 44号 §15, 17): per division, the household-registered people
(本地户籍) whom matching marks as needing a survey and who have no waiting task, grouped by
household so that one visit covers every member (户不漏人、人不漏项).

Identity is the registry of names and numbers (architecture.md): the prefilled forms need them,
so the list streams the division's household members from identity (`POST
/internal/survey-subjects`, on behalf of the reviewer who asked) and keeps survey's own copy,
sealed, in `residents` — every member, not only those to survey, so that a household shows who of
it is already complete. Nothing holds the division in memory: the stream is read and written in
batches; the tasks are one INSERT … SELECT over survey's own tables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

import httpx
import sqlalchemy as sa

from canbao_contracts.id_numbers import mask, mask_name
from canbao_platform import bulk
from canbao_platform.db import Database
from canbao_platform.problems import Problem
from canbao_platform.sealing import Sealer
from canbao_survey.problems import IdentityUnavailable
from canbao_survey.tables import residents, subjects, survey_lists
from canbao_survey.tasks import TaskChannel, TaskState

BATCH: Final = 1000
STREAM_TIMEOUT: Final = httpx.Timeout(10.0, read=60.0)


def resident_context(person_id: UUID | str) -> str:
    return f"survey.residents:{person_id}"


def household_key(
    sealer: Sealer, region_code: str, household_number: str | None, person_id: str
) -> str:
    """A household's key without its number in clear: keyed with survey's data key, so that a
    member without a household number is a household of their own."""
    key = sealer.keys[sealer.key_id]
    text = f"{region_code}:{household_number}" if household_number else f"person:{person_id}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ListMade:
    list_id: UUID
    region_code: str
    tasks: int
    households: int
    residents: int


async def identity_subjects(
    identity_url: str,
    token: str,
    body: dict[str, Any],
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Identity's survey subjects for `body` (a region or person ids), in batches."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            httpx.AsyncClient(
                base_url=identity_url, transport=transport, timeout=STREAM_TIMEOUT
            ) as http,
            http.stream(
                "POST", "/internal/survey-subjects", json=body, headers=headers
            ) as response,
        ):
            if response.status_code != 200:
                await response.aread()
                raise _refusal(response)
            batch: list[dict[str, Any]] = []
            async for line in response.aiter_lines():
                if line.strip():
                    batch.append(json.loads(line))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch
    except httpx.HTTPError as error:
        raise IdentityUnavailable(type(error).__name__) from None


def _refusal(response: httpx.Response) -> Problem:
    """Identity refusing the caller (403 out-of-scope, caller-not-allowed) is the caller's own
    problem, passed on; anything else means identity cannot serve the list now."""
    if response.status_code == 403:
        try:
            body = dict(response.json())
            slug = str(body.pop("type")).removeprefix("/problems/")
        except (ValueError, KeyError, TypeError):
            return IdentityUnavailable("identity answered 403")
        title, detail = body.pop("title", slug), body.pop("detail", None)
        body.pop("status", None), body.pop("instance", None)
        return Problem(403, slug, title, detail, **body)
    return IdentityUnavailable(f"identity answered {response.status_code}")


# One batch of residents as one statement over arrays (canbao_platform.bulk), the same text
# every batch (prepared once per connection): a multi-row VALUES would be compiled anew for each
# batch, 9 parameters a row. The columns and their types are residents' (tables.py); the sealing
# key and the time are the batch's, one parameter each.
_RESIDENT_COLUMNS: Final = bulk.columns(residents, without=("key_id", "refreshed_at"))
_KEEP_RESIDENTS: Final = f"""
INSERT INTO residents ({", ".join(_RESIDENT_COLUMNS)}, key_id, refreshed_at)
SELECT {", ".join(bulk.value(c, t) for c, t in _RESIDENT_COLUMNS.items())}, :key_id, :now
FROM {bulk.rows(_RESIDENT_COLUMNS)}
ON CONFLICT (person_id) DO UPDATE SET
    region_code = excluded.region_code, household_key = excluded.household_key,
    relation = excluded.relation, masked_name = excluded.masked_name,
    masked_id_number = excluded.masked_id_number, prefill_sealed = excluded.prefill_sealed,
    key_id = excluded.key_id, refreshed_at = excluded.refreshed_at
"""


async def keep_residents(
    database: Database, sealer: Sealer, batch: list[dict[str, Any]], *, now: datetime
) -> None:
    """Seal and keep one batch of identity's household members."""
    if not batch:
        return
    rows: list[dict[str, Any]] = []
    for subject in batch:
        person_id = subject["person_id"]
        number = subject.get("id_number") or ""
        region_code = subject["region_code"]
        rows.append(
            {
                "person_id": UUID(person_id),
                "region_code": region_code,
                "household_key": household_key(
                    sealer, region_code or "", subject.get("household_number"), person_id
                ),
                "relation": subject.get("household_relation"),
                "masked_name": mask_name(subject["name"]) if subject.get("name") else None,
                "masked_id_number": mask(number) if len(number) >= 11 else None,
                "prefill_sealed": sealer.seal(subject, context=resident_context(person_id)),
            }
        )
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.text(_KEEP_RESIDENTS),
            {**bulk.arrays(rows, _RESIDENT_COLUMNS), "key_id": sealer.key_id, "now": now},
        )


# The division's people to survey without a waiting task; the partial unique index
# ux_tasks_open_person makes a concurrent second list skip whom the first took.
_NEW_TASKS: Final = """
INSERT INTO tasks (task_id, list_id, channel, origin, person_id, region_code, household_key,
                   survey_reasons, missing, inaccurate, state, team, version, created_at,
                   updated_at)
SELECT gen_random_uuid(), :list_id, :channel, 'survey', s.person_id, s.region_code,
       r.household_key, s.survey_reasons, s.missing, s.inaccurate, :state, '{}', 0, :now, :now
FROM subjects s LEFT JOIN residents r ON r.person_id = s.person_id
WHERE s.region_code LIKE :prefix AND s.needs_survey AND s.in_scope AND s.household_registered
  AND NOT s.deceased
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.person_id = s.person_id
                  AND t.state NOT IN ('approved', 'closed'))
ON CONFLICT (person_id)
WHERE state NOT IN ('approved', 'closed') AND person_id IS NOT NULL AND channel = 'survey'
DO NOTHING
RETURNING household_key
"""


async def make_list(
    database: Database,
    sealer: Sealer,
    *,
    region_code: str,
    created_by: str,
    now: datetime,
    subjects_stream: AsyncIterator[list[dict[str, Any]]],
) -> ListMade:
    """Refresh the division's households from identity, then add a task for each person to
    survey who has none waiting. Repeatable: a second list adds only the new people."""
    count = 0
    async for batch in subjects_stream:
        await keep_residents(database, sealer, batch, now=now)
        count += len(batch)
    list_id = uuid4()
    prefix = region_code.replace("%", "").replace("_", "") + "%"
    async with database.engine.begin() as connection:
        # Waiting tasks follow their household (a member listed before identity knew it).
        await connection.execute(
            sa.text(
                "UPDATE tasks t SET household_key = r.household_key FROM residents r "
                "WHERE r.person_id = t.person_id AND t.region_code LIKE :prefix "
                "AND t.state NOT IN ('approved', 'closed') "
                "AND t.household_key IS DISTINCT FROM r.household_key"
            ),
            {"prefix": prefix},
        )
        # Counted where they are made: a county's tasks never come back to this process. A
        # task whose person identity did not stream has no household: one of its own.
        tasks, households = (
            await connection.execute(
                sa.text(
                    f"WITH created AS ({_NEW_TASKS}) SELECT count(*), count(DISTINCT "
                    "household_key) + count(*) FILTER (WHERE household_key IS NULL) FROM created"
                ),
                {
                    "list_id": list_id,
                    "channel": TaskChannel.SURVEY.value,
                    "prefix": prefix,
                    "state": TaskState.OPEN.value,
                    "now": now,
                },
            )
        ).one()
        await connection.execute(
            sa.insert(survey_lists).values(
                list_id=list_id,
                region_code=region_code,
                created_by=created_by,
                created_at=now,
                tasks=tasks,
                households=households,
            )
        )
    return ListMade(list_id, region_code, tasks, households, count)


def needing_survey(prefix: str) -> sa.Select[Any]:
    """The division's people needing a survey now (survey's copy of matching's verdicts)."""
    return sa.select(subjects.c.person_id).where(
        subjects.c.region_code.like(prefix + "%"),
        subjects.c.needs_survey,
        subjects.c.in_scope,
        subjects.c.household_registered,
        sa.not_(subjects.c.deceased),
    )
