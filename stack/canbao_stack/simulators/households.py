"""Households and the people in them: who lives together (head, spouse, children, the head's
parents), their ages (so that the population has Guizhou's age pyramid: about a quarter under
15, one in six over 60), names, ethnicity, and citizen ID numbers that are unique in the
`sources` database; plus non-local workers (household registered in another province) and
foreigners or Hong Kong, Macao and Taiwan residents registered with another document.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from typing import Final

from canbao_contracts.id_numbers import check_character
from canbao_stack.simulators.divisions import (
    COUNTIES,
    HOMETOWNS,
    PROVINCE_NAME,
    STREETS,
    TOWNS,
    VILLAGES,
    County,
)
from canbao_stack.simulators.model import WORLD_DATE, Household, Person
from canbao_stack.simulators.names import FOREIGN_NAMES, given_name, surname
from canbao_stack.simulators.numbers import landline, mobile
from canbao_stack.simulators.units import Units

_WORLD_DAY: Final = WORLD_DATE.toordinal()
_COUNTY_CUM: Final = tuple(accumulate(c.weight for c in COUNTIES))
_HOMETOWN_CUM: Final = tuple(accumulate(w for _, w in HOMETOWNS))
# Age of the head of a household: (from, to, weight)
_HEAD_AGES: Final = ((20, 29, 11), (30, 39, 25), (40, 49, 24), (50, 59, 18), (60, 69, 10),
                     (70, 79, 6), (80, 95, 2))  # fmt: skip
# Children per couple: cumulative shares of 0, 1, 2, 3, 4 (rural families are larger).
_CHILDREN: Final = {True: (0.14, 0.56, 0.90, 0.98, 1.0), False: (0.04, 0.23, 0.64, 0.89, 1.0)}
_HEAD_AGE_CUM: Final = tuple(accumulate(w for *_, w in _HEAD_AGES))
# GB 3304 ethnicity codes with Guizhou's shares (7th census, per cent): Han, Miao, Buyi, Tujia,
# Dong, Yi, Gelao, Shui, Hui, Bai, Zhuang, Yao.
_ETHNICITIES: Final = (("01", 62.0), ("06", 12.0), ("09", 6.9), ("15", 3.9), ("12", 4.1),
                       ("07", 2.5), ("37", 1.4), ("25", 0.9), ("03", 0.5), ("14", 0.5),
                       ("08", 0.2), ("13", 0.1))  # fmt: skip
_ETHNICITY_CUM: Final = tuple(accumulate(w for _, w in _ETHNICITIES))


# The sequence numbers of a region and birth date are split between LANES lanes; chunk n draws
# from lane n % LANES. Chunks of different lanes can never hand out the same number, so a worker
# that generates all the chunks of some lanes needs to know only its own numbers (and those in
# the database before): the result is the same with 1 or LANES workers.
LANES: Final = 2
_PER_LANE: Final = 500 // LANES  # sequence numbers of one parity (gender) per lane


@dataclass(slots=True)
class Draw:
    """The state of generating one chunk: its random stream and what must stay unique."""

    rng: random.Random
    seed: int
    units: Units
    used_numbers: set[str]  # the first 17 characters of every number handed out
    lane: int = 0


def local_household(d: Draw, first: int, room: int) -> list[Person]:
    """A household of the register with at most `room` members; indexes from `first`."""
    rng = d.rng
    county = COUNTIES[bisect(_COUNTY_CUM, rng.random() * _COUNTY_CUM[-1])]
    urban = rng.random() < county.urban_share
    phone = landline(rng) if rng.random() < 0.05 else mobile(rng)
    home = Household(
        f"{d.seed:05d}{first:010d}", county, urban, _address(rng, county, urban), phone
    )
    band = _HEAD_AGES[bisect(_HEAD_AGE_CUM, rng.random() * _HEAD_AGE_CUM[-1])]
    head_age = band[0] + int(rng.random() * (band[1] - band[0] + 1))
    head_male = rng.random() < 0.8
    family = surname(rng)
    ethnicity = _ETHNICITIES[bisect(_ETHNICITY_CUM, rng.random() * _ETHNICITY_CUM[-1])][0]
    members = [("01", head_age, head_male, family)]
    married = rng.random() < (0.45 if head_age < 28 else 0.65 if head_age >= 75 else 0.86)
    mother_age = head_age if not head_male else head_age - 2
    if married:
        spouse_age = max(20, head_age + (int(rng.random() * 7) - 4 if head_male else 2))
        members.append(("02", spouse_age, not head_male, surname(rng)))
        mother_age = spouse_age if head_male else head_age
    if 22 <= mother_age <= 62:
        children = bisect(_CHILDREN[urban], rng.random())
        father = family if head_male or not married else members[1][3]
        for _ in range(children):
            age = mother_age - 21 - int(rng.random() * 14)
            if age >= 0 and (age < 26 or rng.random() < 0.2):
                members.append(("10", age, rng.random() < 0.53, father))
    if not urban and 48 <= head_age <= 72 and rng.random() < 0.45:
        # Left-behind grandchildren (留守儿童): their parents work in another province.
        for _ in range(1 + (rng.random() < 0.4)):
            members.append(("99", int(rng.random() * 15), rng.random() < 0.53, family))
    if 25 <= head_age <= 58 and rng.random() < (0.22 if urban else 0.32):
        for _ in range(1 + (rng.random() < 0.5)):
            members.append(
                (
                    "20",
                    min(100, head_age + 22 + int(rng.random() * 11)),
                    not members[-1][2] if members[-1][0] == "20" else rng.random() < 0.45,
                    family,
                )
            )
    people = []
    for offset, (relation, age, male, family_name) in enumerate(members[:room]):
        birth = _birth(rng, age)
        region = county.code if rng.random() < 0.93 else _elsewhere(rng)
        person = Person(
            first + offset,
            family_name + given_name(rng, male, birth.year),
            male,
            birth,
            number(d, region, birth, male),
            ethnicity if rng.random() < 0.9 else "01",
            home,
            relation=relation,
            urban=urban,
            region=county.code,
        )
        people.append(person)
    return people


def non_local_worker(d: Draw, index: int, county: County) -> Person:
    """Someone working here whose household is registered in another province."""
    rng = d.rng
    place = HOMETOWNS[bisect(_HOMETOWN_CUM, rng.random() * _HOMETOWN_CUM[-1])][0]
    male = rng.random() < 0.6
    birth = _birth(rng, 20 + int(rng.random() * 30))
    name = surname(rng) + given_name(rng, male, birth.year)
    person = Person(
        index,
        name,
        male,
        birth,
        number(d, place.code, birth, male),
        "01",
        None,
        hometown=place,
        urban=rng.random() < 0.3,
        region=county.code,
    )
    person.phone = mobile(rng)
    return person


def foreigner(d: Draw, index: int, county: County) -> Person:
    """Someone registered in medical insurance with a passport (02), a Hong Kong/Macao/Taiwan
    residence permit (03) or a foreigner's permanent residence ID (04) (domain.md §3)."""
    rng = d.rng
    male = rng.random() < 0.55
    birth = _birth(rng, 22 + int(rng.random() * 40))
    roll = rng.random()
    if roll < 0.25:  # permit numbers have the citizen ID's structure, region 810000 (Hong Kong)
        kind, document = "03", number(d, "810000", birth, male)
        name = surname(rng) + given_name(rng, male, birth.year)
    else:
        kind = "02" if roll < 0.85 else "04"
        serial = f"{d.seed % 1000:03d}{index:09d}"
        document = f"E{serial[1:]}" if kind == "02" else f"USA{serial}"
        name = FOREIGN_NAMES[int(rng.random() * len(FOREIGN_NAMES))]
    person = Person(index, name, male, birth, None, "01", None, region=county.code)
    person.document = (kind, document)
    return person


def number(d: Draw, region: str, birth: date, male: bool) -> str:
    """A citizen ID number no one else in the database has: a random sequence number of the
    chunk's lane and the right parity (odd for men), moved on within the lane while taken."""
    prefix = f"{region}{birth.year:04d}{birth.month:02d}{birth.day:02d}"
    first = d.lane * _PER_LANE
    offset = int(d.rng.random() * _PER_LANE)
    for _ in range(_PER_LANE):
        first17 = f"{prefix}{(first + offset) * 2 + male:03d}"
        if first17 not in d.used_numbers:
            d.used_numbers.add(first17)
            return first17 + check_character(first17)
        offset = (offset + 1) % _PER_LANE
    raise RuntimeError(f"all sequence numbers of {prefix} in lane {d.lane} are taken")


def _birth(rng: random.Random, age: int) -> date:
    """A birth date at which the person is `age` on WORLD_DATE."""
    return date.fromordinal(_WORLD_DAY - 1 - int((age + rng.random() * 0.998) * 365.2425))


def _elsewhere(rng: random.Random) -> str:
    """Born elsewhere: the number keeps the region of birth (another county or province)."""
    if rng.random() < 0.7:
        return COUNTIES[int(rng.random() * len(COUNTIES))].code
    return HOMETOWNS[int(rng.random() * len(HOMETOWNS))][0].code


def _address(rng: random.Random, county: County, urban: bool) -> str:
    where = f"{PROVINCE_NAME}{county.prefecture_name}{county.name}"
    if urban:
        street = STREETS[int(rng.random() * len(STREETS))]
        building, room = 1 + int(rng.random() * 30), 101 + int(rng.random() * 25) * 100
        return f"{where}{street}{1 + int(rng.random() * 300)}号{building}栋{room}室"
    town, village = TOWNS[int(rng.random() * len(TOWNS))], VILLAGES[int(rng.random() * 16)]
    return f"{where}{town}{village}{1 + int(rng.random() * 12)}组{1 + int(rng.random() * 80)}号"
