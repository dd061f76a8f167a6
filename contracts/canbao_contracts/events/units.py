"""`registry.units`: the units (employers) of the core insurance system, si_core.ab01 (sources.md;
domain.md §4 "Unit information"), as identity hears of them: for the lists that name a unit
(reporting's employers leaving employees out, 劳动监察).

Keyed by the unit's AAB001. Each event is the unit's whole state or its deletion, so the topic is
compacted and a consumer keeps, per unit, the event with the highest `revision` (the source
position of the change: a duplicate or a late copy of an older change carries a lower one).
The fields hold what the source holds where it is valid, null where it is missing or not valid:
the unit is still named by whatever is known of it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final

from pydantic import NonNegativeInt, StringConstraints

from canbao_contracts.codes import UnitType
from canbao_contracts.events.base import Event, RegionCode, SourceId
from canbao_contracts.topics import UNITS

__all__ = ["CREDIT_CODE_PATTERN", "UNIT_NAME_MAX", "UnitChanged", "UnitDeleted"]

# GB 32100-2015: 18 characters of its alphabet (digits and capitals but I, O, S, V, Z).
CREDIT_CODE_PATTERN: Final = r"^[0-9A-HJ-NP-RTUWXY]{18}$"
CreditCode = Annotated[str, StringConstraints(pattern=CREDIT_CODE_PATTERN)]
# AAB004 is varchar(100); text normalised by the registry's rules may grow a little (NFKC).
UNIT_NAME_MAX: Final = 300
UnitName = Annotated[str, StringConstraints(min_length=1, max_length=UNIT_NAME_MAX)]


class _UnitEvent(Event):
    unit_id: SourceId
    """AAB001: the unit as the core system numbers it (and the Kafka key)."""
    revision: NonNegativeInt
    """The source position of the change: the highest per unit is the unit's state."""

    @property
    def subject(self) -> str:
        return self.unit_id


class UnitChanged(_UnitEvent):
    """A unit as the core insurance system now holds it: created, or changed."""

    type: ClassVar[str] = "cn.canbao.registry.unit.changed.v1"
    topic = UNITS

    credit_code: CreditCode | None = None
    """AAB003, the unified social credit code; null when missing or malformed."""
    unit_name: UnitName | None = None
    """AAB004, the unit's name as registered (a unit's, never a person's name)."""
    unit_type: UnitType | None = None
    """AAB019 (domain.md §4 code table); null when missing or not a code."""
    region_code: RegionCode | None = None
    """AAB301, the unit's division (GB/T 2260); null when missing or not a division."""


class UnitDeleted(_UnitEvent):
    """The core insurance system deleted the unit's record: nothing is known of it any more."""

    type: ClassVar[str] = "cn.canbao.registry.unit.deleted.v1"
    topic = UNITS
