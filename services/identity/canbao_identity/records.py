"""The canonical vocabulary every adapter maps its source table into: a source
record's identity claims (personal: stored encrypted) and the facts it states (not personal:
codes, dates, regions, unit ids); and a unit of si_core.ab01, which is no person's record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from canbao_contracts.codes import RegistrationItem

# Claim names, in the words of RegistrationItem where one exists.
DOCUMENT_TYPE, ID_NUMBER, NAME, GENDER, BIRTH_DATE = (
    "document_type",
    "id_number",
    "name",
    "gender",
    "birth_date",
)
PHONE, RESIDENCE_ADDRESS, HOUSEHOLD_PLACE = "phone", "residence_address", "household_place"
HOUSEHOLD_REGION, HOUSEHOLD_TYPE, PERSONAL_IDENTITY = (
    "household_region_code",
    "household_type",
    "personal_identity",
)
HOUSEHOLD_STATUS, DEATH_DATE, REGION = "household_status", "death_date", "region_code"
# The household of the household register (hukou.person hh, yhzgx, hjdz): who lives with whom,
# for the household survey (domain.md §2.3). Personal, like every claim.
HOUSEHOLD_NUMBER, HOUSEHOLD_RELATION, HOUSEHOLD_ADDRESS = (
    "household_number",
    "household_relation",
    "household_address",
)
UNIT_NAME = "unit_name"
EMPLOYMENT_STATUS = "employment_status"  # derived from facts (golden.py), never a claim

# The registration items that are claims, each under the item's own name: what a collection's
# items become (handlers.py) and what a gap of the item is about (golden.py).
_IDENTITY_ITEMS: Final = (NAME, GENDER, ID_NUMBER, BIRTH_DATE, PERSONAL_IDENTITY, HOUSEHOLD_TYPE)
_WHERE_ITEMS: Final = (HOUSEHOLD_PLACE, RESIDENCE_ADDRESS, PHONE)
CLAIMED_ITEMS: Final = {RegistrationItem(c): c for c in (*_IDENTITY_ITEMS, *_WHERE_ITEMS)}


@dataclass(frozen=True)
class FactDraft:
    """A fact as the source states it, before it has a person (kind + the kind's fields)."""

    kind: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class SourceRecord:
    """One source row in canonical form."""

    system: str  # sources.md schema: si_core, hukou…
    table: str
    claims: dict[str, Any] = field(default_factory=dict)  # personal: encrypted at rest
    facts: tuple[FactDraft, ...] = ()
    # A row that names its person only through another row (si_core.ac02 → ac01 by AAC001):
    # "<system>.<table>|<record_key>" of that row.
    link_ref: str | None = None

    @property
    def source_table(self) -> str:
        return f"{self.system}.{self.table}"


@dataclass(frozen=True)
class UnitRecord:
    """A unit (employer) of si_core.ab01 in canonical form: what registry.units publishes of it
    (canbao_contracts.events.units), each value None where the source's is missing or invalid."""

    credit_code: str | None  # AAB003
    unit_name: str | None  # AAB004
    unit_type: str | None  # AAB019
    region_code: str | None  # AAB301
