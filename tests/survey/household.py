"""A household of the register as the survey meets it: people as identity publishes them
(registry.persons), matching's verdicts on them (registry.statuses), and the household members
identity streams for a list (POST /internal/survey-subjects, one JSON line each)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from canbao_contracts.codes import (
    Gender,
    Insurance,
    RegistrationItem,
    RegistrationState,
    StatusCode,
    SurveyReason,
)
from canbao_contracts.envelope import encode
from canbao_contracts.events import PersonRegistered, StatusesChanged
from canbao_contracts.events.base import Event
from canbao_contracts.events.statuses import Statuses, Verdict
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_platform.db import Database
from canbao_platform.messaging import Producer
from canbao_survey.tables import subjects

REGION, OTHER_REGION = "520102", "520302"
INSURED = {
    "pension": "11",
    "medical": "21",
    "injury": "30",
    "unemployment": "40",
    "maternity": "50",
}
UNINSURED = {
    "pension": "91",
    "medical": "91",
    "injury": "95",
    "unemployment": "95",
    "maternity": "95",
}


@dataclass
class Member:
    """One member of a household: who they are, and what matching says of them."""

    name: str
    id_number: str
    relation: str = "01"
    needs: tuple[SurveyReason, ...] = ()
    statuses: dict[str, str] = field(default_factory=lambda: dict(INSURED))
    missing: tuple[RegistrationItem, ...] = ()
    region_code: str = REGION
    household_number: str | None = "H0001"
    person_id: UUID = field(default_factory=uuid4)
    phone: str | None = "13800000001"

    def person(self) -> PersonRegistered:
        return PersonRegistered(
            person_id=self.person_id,
            masked_name=self.name[0] + "*",
            birth_date=date(
                int(self.id_number[6:10]), int(self.id_number[10:12]), int(self.id_number[12:14])
            ),
            gender=Gender.MALE if int(self.id_number[16]) % 2 else Gender.FEMALE,
            household_type=None,
            household_region_code=self.region_code,
            region_code=self.region_code,
            household_registered_locally=True,
            household_data_obtained=True,
            missing=self.missing,
        )

    def verdict(
        self, *, needs: tuple[SurveyReason, ...] | None = None, at: datetime | None = None
    ) -> StatusesChanged:
        reasons = self.needs if needs is None else needs
        codes = {Insurance(k): StatusCode(v) for k, v in self.statuses.items()}
        verdict = Verdict(
            region_code=self.region_code,
            gender=None,
            household_registered_locally=True,
            household_data_obtained=True,
            deceased=False,
            statuses=Statuses(**{k.value: v for k, v in codes.items()}),
            needs_survey=bool(reasons),
            survey_reasons=reasons,
            registration=RegistrationState.NEEDS_SURVEY if reasons else RegistrationState.CONFIRMED,
            confirmed_by=None if reasons else ComparisonScope.LOCAL,
        )
        return StatusesChanged(
            person_id=self.person_id,
            verdict=verdict,
            previous=None,
            evaluated_at=at or datetime.now(UTC),
        )

    def subject_line(self) -> dict[str, Any]:
        """What identity's survey-subjects stream says of them."""
        return {
            "person_id": str(self.person_id),
            "document_type": "01",
            "id_number": self.id_number,
            "name": self.name,
            "gender": "1" if int(self.id_number[16]) % 2 else "2",
            "birth_date": f"{self.id_number[6:10]}-{self.id_number[10:12]}-{self.id_number[12:14]}",
            "household_place": "贵州省贵阳市南明区",
            "household_region_code": self.region_code,
            "region_code": self.region_code,
            "household_number": self.household_number,
            "household_relation": self.relation,
            "household_address": "贵州省贵阳市南明区中华南路12号3栋501室",
            "residence_address": "贵州省贵阳市南明区中华南路12号3栋501室",
            "phone": self.phone,
            "household_type": "11",
            "personal_identity": None,
        }


def family() -> list[Member]:
    """The Wangs of 中华南路: the father uninsured with no phone on record, the mother insured
    elsewhere unknown, their son complete."""
    return [
        Member(
            "王建国",
            "520102197503120017",
            "01",
            needs=(SurveyReason.UNINSURED, SurveyReason.MISSING_INFO),
            statuses=dict(UNINSURED),
            missing=(RegistrationItem.PHONE,),
            phone=None,
        ),
        Member(
            "李秀英",
            "520102197708230022",
            "02",
            needs=(SurveyReason.UNINSURED,),
            statuses=dict(UNINSURED),
        ),
        Member("王磊", "520102200109150038", "10"),
    ]


async def stream_of(members: Iterable[Member]) -> AsyncIterator[list[dict[str, Any]]]:
    yield [member.subject_line() for member in members]


async def publish(producer: Producer, events: Iterable[Event]) -> None:
    records = [encode(event, source="/tests") for event in events]
    await producer.send_many([dataclasses.replace(r) for r in records])


async def known(database: Database, members: Iterable[Member], *, timeout_s: float = 30) -> None:
    """Wait until survey's consumer has applied every member's person and verdict."""
    wanted = {m.person_id for m in members}
    async with asyncio.timeout(timeout_s):
        while True:
            async with database.engine.connect() as connection:
                have = set(
                    (
                        await connection.execute(
                            sa.select(subjects.c.person_id).where(
                                subjects.c.person_id.in_(wanted),
                                subjects.c.statuses_at.is_not(None),
                                subjects.c.person_at.is_not(None),
                            )
                        )
                    ).scalars()
                )
            if have == wanted:
                return
            await asyncio.sleep(0.1)
