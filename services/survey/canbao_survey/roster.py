"""The surveyor roster per county (44号 Art.5, §16, §18): surveyors are trained by the county and
carry a 调查证 (survey certificate); they may be contracted staff (劳务派遣、购买服务). Only
surveyors on the county's roster can be assigned its households."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from canbao_platform.db import Database
from canbao_survey.problems import CertificateNumberTaken
from canbao_survey.tables import surveyors


class Surveyor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """The staff account the surveyor logs in with (role surveyor)."""
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    county_code: Annotated[str, StringConstraints(pattern=r"^\d{2,6}$")]
    """The county that trained and certified them (GB/T 2260); a shorter prefix puts them on
    every county's roster under it (a city's or the province's own teams)."""
    certificate_number: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{4,32}$")]
    """调查证号."""
    contracted: bool = False
    active: bool = True


async def put(database: Database, surveyor: Surveyor, *, by: str, now: datetime) -> None:
    """Add the surveyor to the roster, or update their entry (a new certificate, deactivated)."""
    values = surveyor.model_dump()
    statement = insert(surveyors).values(**values, added_by=by, added_at=now)
    statement = statement.on_conflict_do_update(index_elements=[surveyors.c.username], set_=values)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(statement)
    except IntegrityError:
        raise CertificateNumberTaken() from None


async def of_county(database: Database, county_prefix: str) -> list[dict[str, Any]]:
    """The roster of a division: the surveyors certified inside it, and those certified by a
    city or the province above it, whom assignment there takes too (review.assign)."""
    query = (
        sa.select(surveyors)
        .where(
            sa.or_(
                surveyors.c.county_code.like(county_prefix + "%"),
                sa.literal(county_prefix).like(surveyors.c.county_code + "%"),
            )
        )
        .order_by(surveyors.c.county_code, surveyors.c.username)
    )
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [{**dict(row), "added_at": row["added_at"].isoformat()} for row in rows]
