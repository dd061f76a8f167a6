"""Sampling checks (抽查复核, Chongqing plan 四(二)): the city draws a random sample of the records
its counties approved, re-checks each once, and keeps the error rate per county and per surveyor
(or counter clerk) that made them.

The population: every approved record of the region approved in the period (local dates, China
Standard Time): household-survey, self-service and change-registration submissions approved by
the county (审定 on the decision ledger), and approved counter collections.

The draw is stratified twice and kept as the union: in each county the first `per_county`
records, and of each maker (the surveyor, platform member, citizen's session or clerk, AAE011) in
each county the first `per_surveyor`, in one random order; so every county and every maker who
made anything is checked. The random order is md5(seed:record_id) with a seed stored with the
sample: drawn again with the same seed over the same records, the sample is the same (and anyone
can recompute it), which PostgreSQL's random() after setseed() does not promise (it follows the
scan order).

Maker-checker: nobody re-checks a record they made or decided on; the database refuses it too
(survey_0005's trigger). A record is re-checked once: the check is insert-only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final, Literal, Self
from uuid import UUID, uuid4

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy.exc import DBAPIError, IntegrityError

from canbao_contracts.codes import RegistrationItem
from canbao_contracts.events.vocabulary import Channel
from canbao_platform.db import Database, retried_on_conflict, sqlstate
from canbao_platform.sealing import Sealer
from canbao_platform.service_tokens import Caller
from canbao_survey.collections import masked
from canbao_survey.problems import (
    AlreadyChecked,
    CheckerIsMaker,
    InvalidPeriod,
    OutOfScope,
    RecordNotInSample,
    SampleNotFound,
)
from canbao_survey.review import MAKER_CHECKER_SQLSTATE, covers, submission_context
from canbao_survey.store import context_of
from canbao_survey.tables import (
    collections,
    residents,
    sample_checks,
    sample_records,
    samples,
    subjects,
    submissions,
)

LOCAL_TIME: Final = "Asia/Shanghai"  # the approval's date as the agency's calendar has it
MAX_PERIOD: Final = timedelta(days=366)
MAX_PER_STRATUM: Final = 100
LABELS: Final = {channel.value: channel.label for channel in Channel}


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region_code: Annotated[str, StringConstraints(pattern=r"^\d{4}(\d{2})?$")]
    """A city (4 digits) or a county (6) in the caller's region."""
    per_county: int = Field(default=5, ge=0, le=MAX_PER_STRATUM)
    per_surveyor: int = Field(default=2, ge=0, le=MAX_PER_STRATUM)
    approved_from: date
    approved_to: date
    seed: int | None = Field(default=None, ge=0, lt=2**62)
    """Absent: a new random seed. Given: the draw of an earlier sample, repeated."""

    @model_validator(mode="after")
    def _something_to_draw(self) -> Self:
        if self.per_county == 0 and self.per_surveyor == 0:
            raise ValueError("per_county or per_surveyor draws at least one record")
        return self


Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class CheckRequest(BaseModel):
    """The re-check of one record: correct, or in error naming the wrong items."""

    model_config = ConfigDict(extra="forbid")

    result: Literal["correct", "error"]
    wrong_items: list[RegistrationItem] = Field(default=[], max_length=len(RegistrationItem))
    comment: Comment = ""

    @model_validator(mode="after")
    def _error_says_what(self) -> Self:
        self.wrong_items = list(dict.fromkeys(self.wrong_items))
        if self.result == "correct" and self.wrong_items:
            raise ValueError("a correct record has no wrong_items")
        if self.result == "error" and not (self.wrong_items or self.comment):
            raise ValueError("an error names its wrong_items or says what is wrong (comment)")
        return self


def sort_key(seed: int, record_id: UUID) -> str:
    """The draw's order of a record (the SQL below computes the same)."""
    return hashlib.md5(f"{seed}:{record_id}".encode()).hexdigest()


# Every approved record of the region and period, with its county, maker and deciders.
_POPULATION: Final = """
SELECT s.submission_id AS record_id, 'submission' AS kind, t.origin AS channel,
       left(t.region_code, 6) AS county_code, s.submitted_by AS maker,
       ARRAY(SELECT d.decided_by FROM decisions d WHERE d.submission_id = s.submission_id
             ORDER BY d.decision_id)::varchar[] AS deciders,
       t.person_id, a.decided_at AS approved_at, s.item_names
FROM submissions s
JOIN tasks t ON t.task_id = s.task_id
JOIN decisions a ON a.submission_id = s.submission_id AND a.stage = 'approve'
     AND a.decision = 'approve'
WHERE s.state = 'approved' AND t.region_code LIKE :prefix
  AND (a.decided_at AT TIME ZONE :tz)::date BETWEEN :start AND :end
UNION ALL
SELECT c.collection_id, 'collection', c.channel, coalesce(c.region_code, j.region_code),
       c.handler,
       (array_remove(ARRAY[c.first_reviewer, c.reviewer], NULL)
        || ARRAY(SELECT d.decided_by FROM decisions d WHERE d.submission_id = c.collection_id))
       ::varchar[],
       c.person_id, coalesce(c.reviewed_at, c.handled_at), c.item_names
FROM collections c
LEFT JOIN subjects j ON j.person_id = c.person_id
WHERE c.state = 'approved' AND coalesce(c.region_code, j.region_code) LIKE :prefix
  AND (coalesce(c.reviewed_at, c.handled_at) AT TIME ZONE :tz)::date BETWEEN :start AND :end
"""
_DRAW: Final = f"""
WITH population AS ({_POPULATION}),
keyed AS (
  SELECT p.*, md5(CAST(:seed AS text) || ':' || CAST(record_id AS text)) AS draw_key
  FROM population p
),
ranked AS (
  SELECT k.*, count(*) OVER () AS population,
         row_number() OVER (PARTITION BY county_code ORDER BY draw_key) AS in_county,
         row_number() OVER (PARTITION BY county_code, maker ORDER BY draw_key) AS in_maker
  FROM keyed k
)
SELECT * FROM ranked WHERE in_county <= :per_county OR in_maker <= :per_surveyor
ORDER BY county_code, maker, approved_at, record_id
"""


@dataclass(frozen=True, slots=True)
class Drawn:
    sample_id: UUID
    region_code: str


@retried_on_conflict
async def draw(
    database: Database, request: SampleRequest, caller: Caller, *, now: datetime
) -> Drawn:
    """Draw and keep a sample (its records, and the seed that drew them)."""
    if not covers(caller, request.region_code):
        raise OutOfScope(request.region_code)
    if request.approved_from > request.approved_to or (
        request.approved_to - request.approved_from > MAX_PERIOD
    ):
        raise InvalidPeriod()
    seed = request.seed if request.seed is not None else secrets.randbits(62)
    sample_id = uuid4()
    async with database.engine.begin() as connection:
        rows = (
            (
                await connection.execute(
                    sa.text(_DRAW),
                    {
                        "prefix": request.region_code + "%",
                        "tz": LOCAL_TIME,
                        "start": request.approved_from,
                        "end": request.approved_to,
                        "seed": str(seed),
                        "per_county": request.per_county,
                        "per_surveyor": request.per_surveyor,
                    },
                )
            )
            .mappings()
            .all()
        )
        await connection.execute(
            sa.insert(samples).values(
                sample_id=sample_id,
                region_code=request.region_code,
                per_county=request.per_county,
                per_surveyor=request.per_surveyor,
                approved_from=request.approved_from,
                approved_to=request.approved_to,
                seed=seed,
                drawn_by=caller.username,
                drawn_at=now,
                population=rows[0]["population"] if rows else 0,
                records=len(rows),
            )
        )
        if rows:
            await connection.execute(
                sa.insert(sample_records),
                [
                    {
                        "sample_id": sample_id,
                        **{
                            k: row[k]
                            for k in (
                                "record_id",
                                "kind",
                                "channel",
                                "county_code",
                                "maker",
                                "deciders",
                                "person_id",
                                "approved_at",
                                "item_names",
                            )
                        },
                    }
                    for row in rows
                ],
            )
    return Drawn(sample_id, request.region_code)


async def _sample(connection: Any, sample_id: UUID, caller: Caller) -> Any:
    row = (
        (await connection.execute(sa.select(samples).where(samples.c.sample_id == sample_id)))
        .mappings()
        .first()
    )
    if row is None:
        raise SampleNotFound()
    if not covers(caller, row["region_code"]):
        raise OutOfScope(row["region_code"])
    return row


@retried_on_conflict
async def check(
    database: Database,
    sample_id: UUID,
    record_id: UUID,
    request: CheckRequest,
    caller: Caller,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Record the re-check of one record of the sample: once, by someone who neither made nor
    decided it."""
    try:
        async with database.engine.begin() as connection:
            await _sample(connection, sample_id, caller)
            record = (
                (
                    await connection.execute(
                        sa.select(sample_records).where(
                            sample_records.c.sample_id == sample_id,
                            sample_records.c.record_id == record_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if record is None:
                raise RecordNotInSample()
            if caller.username == record["maker"] or caller.username in record["deciders"]:
                raise CheckerIsMaker()
            earlier = await _check_of(connection, sample_id, record_id)
            if earlier is not None:
                raise AlreadyChecked(earlier)
            row = {
                "sample_id": sample_id,
                "record_id": record_id,
                "result": request.result,
                "wrong_items": [i.value for i in request.wrong_items],
                "comment": request.comment,
                "checked_by": caller.username,
                "checked_at": now,
            }
            await connection.execute(sa.insert(sample_checks).values(row))
    except IntegrityError:  # a concurrent check of the same record won
        async with database.engine.connect() as connection:
            earlier = await _check_of(connection, sample_id, record_id)
        if earlier is None:
            raise
        raise AlreadyChecked(earlier) from None
    except DBAPIError as error:
        if sqlstate(error) == MAKER_CHECKER_SQLSTATE:
            raise CheckerIsMaker() from None
        raise
    # Whom the record is about, for the gateway's audit log (identity's id and the county).
    return {
        "record_id": str(record_id),
        "county_code": record["county_code"],
        "person_id": str(record["person_id"]) if record["person_id"] else None,
        **_check_view(row),
    }


async def _check_of(connection: Any, sample_id: UUID, record_id: UUID) -> dict[str, Any] | None:
    row = (
        (
            await connection.execute(
                sa.select(sample_checks).where(
                    sample_checks.c.sample_id == sample_id,
                    sample_checks.c.record_id == record_id,
                )
            )
        )
        .mappings()
        .first()
    )
    return _check_view(row) if row is not None else None


def _check_view(row: Any) -> dict[str, Any]:
    return {
        "result": row["result"],
        "wrong_items": list(row["wrong_items"]),
        "comment": row["comment"],
        "checked_by": row["checked_by"],
        "checked_at": row["checked_at"].isoformat(),
    }


def rates(rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Error rates from (county, maker, result) of checked records: overall, per county and per
    maker (in its county): checked, errors, errors ÷ checked (4 decimals)."""

    def rate(results: list[str]) -> dict[str, Any]:
        errors = results.count("error")
        return {
            "checked": len(results),
            "errors": errors,
            "error_rate": round(errors / len(results), 4) if results else None,
        }

    counties: dict[str, list[str]] = {}
    makers: dict[tuple[str, str], list[str]] = {}
    for county, maker, result in rows:
        counties.setdefault(county, []).append(result)
        makers.setdefault((county, maker), []).append(result)
    return {
        "overall": rate([result for *_, result in rows]),
        "by_county": [{"county_code": c, **rate(r)} for c, r in sorted(counties.items())],
        "by_maker": [
            {"county_code": c, "maker": m, **rate(r)} for (c, m), r in sorted(makers.items())
        ],
    }


async def sample_view(
    database: Database, sealer: Sealer, sample_id: UUID, caller: Caller
) -> dict[str, Any]:
    """The sample: its records, masked, each with its re-check, and the error rates so far."""
    async with database.engine.connect() as connection:
        sample = await _sample(connection, sample_id, caller)
        records = (
            (
                await connection.execute(
                    sa.select(
                        sample_records,
                        sample_checks.c.result,
                        sample_checks.c.wrong_items,
                        sample_checks.c.comment,
                        sample_checks.c.checked_by,
                        sample_checks.c.checked_at,
                        subjects.c.masked_name,
                        residents.c.masked_id_number,
                        submissions.c.body_sealed,
                        submissions.c.key_id.label("s_key_id"),
                        collections.c.items_sealed,
                        collections.c.key_id.label("c_key_id"),
                    )
                    .select_from(
                        sample_records.outerjoin(
                            sample_checks,
                            sa.and_(
                                sample_checks.c.sample_id == sample_records.c.sample_id,
                                sample_checks.c.record_id == sample_records.c.record_id,
                            ),
                        )
                        .outerjoin(subjects, subjects.c.person_id == sample_records.c.person_id)
                        .outerjoin(residents, residents.c.person_id == sample_records.c.person_id)
                        .outerjoin(
                            submissions,
                            sa.and_(
                                sample_records.c.kind == "submission",
                                submissions.c.submission_id == sample_records.c.record_id,
                            ),
                        )
                        .outerjoin(
                            collections,
                            sa.and_(
                                sample_records.c.kind == "collection",
                                collections.c.collection_id == sample_records.c.record_id,
                            ),
                        )
                    )
                    .where(sample_records.c.sample_id == sample_id)
                    .order_by(
                        sample_records.c.county_code,
                        sample_records.c.maker,
                        sample_records.c.approved_at,
                        sample_records.c.record_id,
                    )
                )
            )
            .mappings()
            .all()
        )
    checked = [(r["county_code"], r["maker"], r["result"]) for r in records if r["result"]]
    return {
        "sample_id": str(sample_id),
        "region_code": sample["region_code"],
        "per_county": sample["per_county"],
        "per_surveyor": sample["per_surveyor"],
        "approved_from": sample["approved_from"].isoformat(),
        "approved_to": sample["approved_to"].isoformat(),
        "seed": sample["seed"],
        "drawn_by": sample["drawn_by"],
        "drawn_at": sample["drawn_at"].isoformat(),
        "population": sample["population"],
        "records": [_record_view(r, sealer) for r in records],
        "rates": rates(checked),
    }


def _record_view(row: Any, sealer: Sealer) -> dict[str, Any]:
    items: dict[str, str] = {}
    if row["kind"] == "submission" and row["body_sealed"] is not None:
        body = sealer.open(
            row["body_sealed"], key_id=row["s_key_id"], context=submission_context(row["record_id"])
        )
        items = body.get("items", {})
    elif row["kind"] == "collection" and row["items_sealed"] is not None:
        items = sealer.open(
            row["items_sealed"], key_id=row["c_key_id"], context=context_of(row["record_id"])
        )
    known = {i.value: i for i in RegistrationItem}
    name = row["masked_name"] or (masked("name", items["name"]) if items.get("name") else None)
    number = row["masked_id_number"] or (
        masked("id_number", items["id_number"]) if items.get("id_number") else None
    )
    channel = row["channel"]
    return {
        "record_id": str(row["record_id"]),
        "kind": row["kind"],
        "channel": channel,
        "channel_label": LABELS.get(channel, channel),
        "county_code": row["county_code"],
        "maker": row["maker"],
        "deciders": list(row["deciders"]),
        "approved_at": row["approved_at"].isoformat(),
        "person": {
            "person_id": str(row["person_id"]) if row["person_id"] else None,
            "name": name,
            "id_number": number,
        },
        "items": [
            {
                "item": name_,
                "code": known[name_].code,
                "label": known[name_].label,
                "value": masked(name_, value),
            }
            for name_, value in items.items()
            if name_ in known
        ],
        "check": _check_view(row) if row["result"] else None,
    }


async def quality(
    database: Database,
    caller: Caller,
    *,
    region: str | None,
    start: date | None,
    end: date | None,
) -> dict[str, Any]:
    """The error rates per county and per maker over every re-check of the region (the checks
    recorded, counted as they are), checked between `start` and `end` (local dates)."""
    region = region or caller.scope
    if not covers(caller, region):
        raise OutOfScope(region)
    conditions: list[sa.ColumnElement[bool]] = [sample_records.c.county_code.like(region + "%")]
    checked_on = sa.cast(sa.func.timezone(LOCAL_TIME, sample_checks.c.checked_at), sa.Date)
    if start is not None:
        conditions.append(checked_on >= start)
    if end is not None:
        conditions.append(checked_on <= end)
    query = (
        sa.select(
            sample_records.c.county_code,
            sample_records.c.maker,
            sample_checks.c.result,
            sample_records.c.sample_id,
        )
        .join(
            sample_checks,
            sa.and_(
                sample_checks.c.sample_id == sample_records.c.sample_id,
                sample_checks.c.record_id == sample_records.c.record_id,
            ),
        )
        .where(*conditions)
    )
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return {
        "region": region,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "samples": len({r.sample_id for r in rows}),
        **rates([(r.county_code, r.maker, r.result) for r in rows]),
    }
