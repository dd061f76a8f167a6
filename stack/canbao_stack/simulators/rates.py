"""How dirty the generated source data is: the configurable rates of defects and anomalies.

Rates are per person unless said otherwise. The defaults are "realistic" in the sense of the
defects the 2014-2017 全民参保登记 comparisons reported (a few per cent of records with missing
or malformed phones and addresses, under one per cent with wrong numbers or duplicate
enrolments); tests raise them to see enough of each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Rates:
    # -- Identity numbers in the systems' copies (still the same person: they must merge) --
    legacy_15: float = 0.04  # per si_core/medical copy of someone born 1900-1999: 15 digits
    lowercase_x: float = 0.3  # per non-register copy of a number ending in X: written "x"
    spaces: float = 0.02  # per non-register copy: a space before, after or inside
    # -- Defects the registry must report (domain.md §5 "inaccurate", "missing") --
    wrong_check_digit: float = 0.003  # one copy (card, employment, dibao) has a typo: no merge
    name_variant: float = 0.005  # one copy spells a homophone (王玮 for 王伟)
    phone_missing: float = 0.02  # no copy carries a phone
    phone_malformed: float = 0.01  # every copy carries the same uncallable phone
    address_missing: float = 0.02  # per si_core person record: residence address blank
    address_placeholder: float = 0.01  # per si_core person record: "不详", "无" …
    identity_conflict: float = 0.0005  # another person registered under this one's number
    foreign_document: float = 0.001  # people registered with a passport or permit (medical)
    # -- Insurance anomalies (domain.md §5 flags) --
    duplicate_pension: float = 0.004  # employee and resident pension both paying
    duplicate_pension_region: float = 0.0015  # a second person record paying in another city
    duplicate_medical: float = 0.008  # employee and resident medical both paying
    duplicate_medical_region: float = 0.003  # resident medical paying in two cities
    duplicate_benefits: float = 0.01  # per pensioner: a second pension paid
    benefit_after_death: float = 0.05  # per deceased pensioner: the pension still paid

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rate {field.name} must be within [0, 1], not {value}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
