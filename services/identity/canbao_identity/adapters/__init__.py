"""One adapter per source table (sources.md): a change event's row → a canonical SourceRecord.
Adding a source is adding an adapter module and a line in ADAPTERS, nothing else. The units of
si_core.ab01 are no person's records: units.py publishes them (adapter si_core.unit). An approved
collection is not a change event but maps to a SourceRecord the same way (collection.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from canbao_identity.adapters import (
    card,
    civil,
    education,
    employment,
    hukou,
    justice,
    medical,
    national,
    si_core,
)
from canbao_identity.records import SourceRecord

Row = dict[str, Any]


@dataclass(frozen=True)
class Adapter:
    system: str
    table: str
    to_record: Callable[[Row], SourceRecord]
    # The primary key is a citizen number (hukou.person.sfzh): the stored record key is then its
    # blind index, never the number (FactSource.record_key).
    key_is_id_number: bool = False


ADAPTERS: Final[dict[str, Adapter]] = {
    f"cdc.{a.system}.{a.table}": a
    for a in (
        Adapter("si_core", "ac01", si_core.person),
        Adapter("si_core", "ac02", si_core.enrolment),
        Adapter("si_core", "ac60", si_core.benefit),
        Adapter("medical", "insured", medical.insured),
        Adapter("hukou", "person", hukou.person, key_is_id_number=True),
        Adapter("hukou", "resident_permit", hukou.resident_permit),
        Adapter("civil", "cremation", civil.cremation),
        Adapter("civil", "dibao", civil.dibao),
        Adapter("education", "student", education.student),
        Adapter("justice", "inmate", justice.inmate),
        Adapter("employment", "job_registration", employment.job_registration),
        Adapter("card", "card_holder", card.card_holder),
        Adapter("national", "cross_region", national.cross_region),
    )
}


def adapter_for(topic: str) -> Adapter | None:
    """By topic suffix, so a deployment's topic prefix (`cdc`, `cdc_test_3`) does not matter."""
    schema_table = ".".join(topic.split(".")[-2:])
    return ADAPTERS.get(f"cdc.{schema_table}")
