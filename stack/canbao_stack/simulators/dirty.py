"""Dirty data (sources.md: "Values are as dirty as real ones"): how each system's copy of a person
differs from the truth, at the configured rates (rates.py).

Two kinds of defect, kept apart on purpose:
* harmless forms of a valid number (15 digits, lower-case x, spaces): the copies must merge;
* defects the registry must report (domain.md §5): a wrong check character in one copy (never
  merged silently), a homophone in one copy's name, a missing or malformed phone, a missing or
  placeholder residence address, another person using this person's number.
Defects of the second kind are only given to living people, and a wrong check character only to
a copy whose facts do not change the person's statuses or phone (card when the core system has
the same phone, a job registration when the unit also enrols him, a dibao record), so that the
expected outcome does not depend on whether identity links such a record as a candidate.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Final

from canbao_stack.simulators.households import Draw
from canbao_stack.simulators.model import Person
from canbao_stack.simulators.names import given_name, surname, variant_of
from canbao_stack.simulators.numbers import legacy_15, malformed_phone, with_spaces, wrong_check
from canbao_stack.simulators.rates import Rates

# Copies of the number outside the household register, by source table.
AC01, AC01_SECOND = "si_core.ac01", "si_core.ac01#1"  # #1: the person's second record
MEDICAL, MEDICAL_SECOND = "medical.insured", "medical.insured#1"
CARD, JOBS, DIBAO = "card.card_holder", "employment.job_registration", "civil.dibao"
CREMATION, STUDENT, INMATE = "civil.cremation", "education.student", "justice.inmate"
CROSS_REGION = "national.cross_region"
_LEGACY_SOURCES: Final = (AC01, AC01_SECOND, MEDICAL, MEDICAL_SECOND)
# What a clerk types when the address is unknown (our convention: counts as missing).
ADDRESS_PLACEHOLDERS: Final = ("不详", "无", "暂无", "-", "/")


def copies(person: Person) -> list[str]:
    """The source tables holding a copy of the person's number (besides hukou.person)."""
    found = [AC01] if person.in_core else []
    records = {(e.medical, e.record) for e in person.enrolments}
    if (False, 1) in records:
        found.append(AC01_SECOND)
    if (True, 0) in records:
        found.append(MEDICAL)
    if (True, 1) in records:
        found.append(MEDICAL_SECOND)
    for table, present in (
        (CARD, person.card is not None),
        (JOBS, bool(person.jobs)),
        (DIBAO, person.dibao is not None),
        (CREMATION, person.cremated),
        (STUDENT, person.study is not None),
        (INMATE, person.custody is not None),
        (CROSS_REGION, bool(person.cross_region)),
    ):
        if present:
            found.append(table)
    return found


def soil(d: Draw, person: Person, rates: Rates) -> None:
    """Decide every defect of the person's copies."""
    rng = d.rng
    number = person.number
    if number is None:
        return
    tables = copies(person)
    for table in tables:
        written = number
        if table in _LEGACY_SOURCES and number[6:8] == "19" and rng.random() < rates.legacy_15:
            written = legacy_15(number)
            person.traits.append("legacy_15")
        elif number[17] == "X" and rng.random() < rates.lowercase_x:
            written = number[:17] + "x"
            person.traits.append("lowercase_x")
        if rng.random() < rates.spaces:
            written = with_spaces(written, rng)
            person.traits.append("spaces")
        if written != number:
            person.id_copies[table] = written
    if person.died is not None:
        return
    _contact_defects(rng, person, rates)
    if not person.local:
        return
    # Each rate is per eligible person: the dice are rolled first, eligibility checked after.
    if rng.random() < rates.wrong_check_digit and (typo_in := _harmless_for_typo(person, tables)):
        table = typo_in[int(rng.random() * len(typo_in))]
        person.id_copies[table] = wrong_check(number, rng)
        person.traits.append("wrong_check_digit")
    elif rng.random() < rates.name_variant and (variant := variant_of(person.name)):
        # Not in the same person as a typo: identity links the typo by the name.
        variant_in = [t for t in (AC01, MEDICAL, CARD) if t in tables and t not in person.id_copies]
        if variant_in:
            person.name_copies[variant_in[int(rng.random() * len(variant_in))]] = variant
            person.traits.append("name_variant")
    if rng.random() < rates.identity_conflict:
        male = rng.random() < 0.5
        birth = person.birth - timedelta(days=3653 + int(rng.random() * 7000))
        name = surname(rng) + given_name(rng, male, birth.year)
        if name != person.name:
            person.phantom = (name, male, birth)
            person.traits.append("identity_conflict")


def _contact_defects(rng: random.Random, person: Person, rates: Rates) -> None:
    roll = rng.random()
    if roll < rates.phone_missing:
        person.phone = None
        person.traits.append("phone_missing")
    elif roll < rates.phone_missing + rates.phone_malformed:
        person.phone = malformed_phone(rng)
        person.traits.append("phone_malformed")
    if person.in_core:
        roll = rng.random()
        if roll < rates.address_missing:
            person.address_copy = None
            person.traits.append("address_missing")
        elif roll < rates.address_missing + rates.address_placeholder:
            person.address_copy = ADDRESS_PLACEHOLDERS[int(rng.random() * 5)]
            person.traits.append("address_placeholder")


def _harmless_for_typo(person: Person, tables: list[str]) -> list[str]:
    """The copies a wrong check character may be put in: those whose facts change nothing else
    (see the module docstring): the card when the core system has the same phone, the job
    registrations when the unit also enrols him, a dibao record. Rate: per eligible person."""
    unit_paying = any(e.unit is not None and e.state == "1" for e in person.enrolments)
    return [
        table
        for table, harmless in ((CARD, AC01 in tables), (JOBS, unit_paying), (DIBAO, True))
        if harmless and table in tables
    ]
