"""Synthetic households written straight into identity's persons table, for the survey stream's
tests and benchmark (bench/identity_survey_subjects.py), which need more people than the change
event path makes in their time.

Each person's source rows go through the real adapters (hukou.person or, for a migrant,
hukou.resident_permit; and si_core.ac01) and their golden record, public state and sealed row
are made by the builder's own code (GoldenRecords._rebuild_one) and saved as the builder saves them
(Store.save_persons): only resolution is skipped (each row is its person's, by construction).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any, Final
from uuid import UUID

from canbao_contracts.id_numbers import check_character
from canbao_identity.adapters import ADAPTERS
from canbao_identity.golden import LinkedRecord
from canbao_identity.golden_records import GoldenRecords
from canbao_identity.protection import Protector
from canbao_identity.resolution import LinkKind
from canbao_identity.store import Store
from canbao_platform.db import Database

REGIONS: Final = ("520102", "520103", "520111", "520112")
ELSEWHERE: Final = "530102"  # a migrant's household region (another province)
RELATIONS: Final = ("01", "02", "10", "20")  # head, spouse, child, parent: four to a household
SURNAMES: Final = "王李张刘陈杨黄赵吴周"
_EPOCH: Final = date(1970, 1, 1)
_NAMESPACE: Final = uuid.UUID("5a3c1e1e-0000-4000-8000-000000000000")
BATCH: Final = 2_000


@dataclass(frozen=True)
class Resident:
    """What a person is by construction: what the stream should say of them."""

    person_id: UUID
    region_code: str
    household_number: str | None
    household_relation: str | None
    registered: bool  # household-registered locally (hukou.person), not a permit holder
    deceased: bool


@dataclass
class Population:
    residents: list[Resident] = field(default_factory=list)

    def expected(self, prefix: str) -> list[Resident]:
        """Whom a survey of `prefix` lists: locally registered, living, in the division."""
        return [
            x
            for x in self.residents
            if x.registered and not x.deceased and x.region_code.startswith(prefix)
        ]


def resident(index: int) -> tuple[Resident, list[LinkedRecord]]:
    """Person `index`: household index // 4 in one of REGIONS; every 50th without a household
    number, every 20th deceased, every 25th a migrant holding a residence permit instead."""
    household = index // len(RELATIONS)
    region = REGIONS[household % len(REGIONS)]
    migrant = index % 25 == 24
    deceased = index % 20 == 19
    number = None if index % 50 == 7 or migrant else f"{region}{household:08d}"
    relation = None if migrant else RELATIONS[index % len(RELATIONS)]
    birth = date(1950, 1, 1) + timedelta(days=(index * 37) % 20_000)
    home = ELSEWHERE if migrant else region
    first17 = f"{home}{birth:%Y%m%d}{index % 1000:03d}"
    id_number = first17 + check_character(first17)
    name = SURNAMES[index % len(SURNAMES)] + "某" + "甲乙丙丁"[index % 4]
    address = f"贵州省贵阳市{region}第{household}号"
    records = []
    common = {"sfzh": id_number, "xm": name, "xb": "12"[index % 2], "csrq": (birth - _EPOCH).days}
    if migrant:
        permit = common | {
            "jzzh": f"JZ{index}",
            "hjdz_xzqh": ELSEWHERE,
            "jzdz_xzqh": region,
            "jzdz": address,
            "zt": "1",
        }
        records.append(_linked("cdc.hukou.resident_permit", f"jzzh=JZ{index}", permit, index))
    else:
        row = common | {
            "hjdz_xzqh": region,
            "hjdz": address,
            "hh": number,
            "yhzgx": relation,
            "ryzt": "1" if deceased else "0",
            "zxrq": (date(2025, 1, 1) - _EPOCH).days if deceased else None,
        }
        records.append(_linked("cdc.hukou.person", f"sfzh={index}", row, index))
    ac01 = {
        "aac001": f"P{index}",
        "aac002": id_number,
        "aac003": name,
        "aac004": "12"[index % 2],
        "aac006": f"{birth:%Y%m%d}",
        "aab301": region,
        "aae005": f"138{index:08d}",
        "aae006": address,
        "aac009": "21",
        "aac012": "90",
    }
    records.append(_linked("cdc.si_core.ac01", f"aac001=P{index}", ac01, index))
    person_id = uuid.uuid5(_NAMESPACE, str(index))
    return Resident(person_id, region, number, relation, not migrant, deceased), records


def _linked(topic: str, key: str, row: dict[str, Any], index: int) -> LinkedRecord:
    record = ADAPTERS[topic].to_record(row)
    return LinkedRecord(
        source_table=record.source_table,
        record_key=key,
        link_kind=LinkKind.EXACT,
        position=1_000 + index,
        observed_at="2026-01-01T00:00:00+00:00",
        claims=record.claims,
        facts=record.facts,
    )


async def load(database: Database, protector: Protector, people: int) -> Population:
    """Persons 0 … people-1, saved in units of work of BATCH as the builder saves them."""
    population = Population()
    fresh = SimpleNamespace(public_state=None, emitted_facts={})
    for start in range(0, people, BATCH):
        async with database.sessions() as session, session.begin():
            store = Store(session, protector)
            golden_records = GoldenRecords(store, protector, lambda event: None)
            rows = []
            for index in range(start, min(start + BATCH, people)):
                person, records = resident(index)
                population.residents.append(person)
                row, _ = golden_records._rebuild_one(person.person_id, fresh, records)
                rows.append(row)
            await store.ensure_persons({row["person_id"] for row in rows})
            await store.save_persons(rows)
    return population
