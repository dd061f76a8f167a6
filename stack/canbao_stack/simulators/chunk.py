"""One chunk of a population: households drawn from the chunk's own random stream (seeded by the
population's seed and the chunk's number, so a chunk is the same whatever was generated before
it), their lives, their dirty copies, their source rows and their expected outcomes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from canbao_contracts.codes import FlagType, Insurance, StatusCode, SurveyReason
from canbao_stack.simulators.dirty import soil
from canbao_stack.simulators.divisions import COUNTIES
from canbao_stack.simulators.expected import INSURANCES, Facts, Outcome, age, outcome
from canbao_stack.simulators.households import (
    LANES,
    Draw,
    foreigner,
    local_household,
    non_local_worker,
)
from canbao_stack.simulators.lives import live
from canbao_stack.simulators.model import WORLD_DATE, Person
from canbao_stack.simulators.rates import Rates
from canbao_stack.simulators.rows import COLUMNS, Row, person_rows
from canbao_stack.simulators.truth import facts, facts_to_json, gaps
from canbao_stack.simulators.units import Units

CHUNK_SIZE: Final = 10_000  # people; fixed, so that seed + N decide every row
NON_LOCAL_HOUSEHOLDS: Final = 0.11  # of households: about 5 % of the people
_DIBAO_HOUSEHOLDS: Final = 0.05  # of rural households
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(slots=True)
class Chunk:
    number: int
    people: int = 0
    rows: dict[tuple[str, str], list[Row]] = field(
        default_factory=lambda: {table: [] for table in COLUMNS}
    )
    expected: list[Row] = field(default_factory=list)


def generate(
    seed: int,
    number: int,
    total: int,
    units: Units,
    used_numbers: set[str],
    rates: Rates,
    as_of: date,
) -> Chunk:
    """Chunk `number` of a population of `total` people."""
    rng = random.Random(f"canbao-population:{seed}:{number}")
    d = Draw(rng, seed, units, used_numbers, number % LANES)
    chunk = Chunk(number)
    index, end = number * CHUNK_SIZE, min(total, (number + 1) * CHUNK_SIZE)
    while index < end:
        people = _household(d, index, end - index, rates)
        for person in people:
            live(d, person, rates)
            soil(d, person, rates)
            person_rows(chunk.rows, person, seed)
            chunk.expected.append(_expected_row(person, seed, as_of))
        index += len(people)
    chunk.people = index - number * CHUNK_SIZE
    return chunk


def _household(d: Draw, first: int, room: int, rates: Rates) -> list[Person]:
    rng = d.rng
    roll = rng.random()
    county = COUNTIES[int(rng.random() * len(COUNTIES))]
    if roll < rates.foreign_document * 2.8:  # ≈ the rate per person (households of 2.8)
        return [foreigner(d, first, county)]
    if roll < NON_LOCAL_HOUSEHOLDS:
        couple = room > 1 and rng.random() < 0.25
        return [non_local_worker(d, first + i, county) for i in range(1 + couple)]
    people = local_household(d, first, room)
    home = people[0].household
    if home is not None and not home.urban and rng.random() < _DIBAO_HOUSEHOLDS:
        since = WORLD_DATE - timedelta(days=30 + int(rng.random() * 2000))
        for person in people:
            person.dibao = since
    return people


def _expected_row(person: Person, seed: int, as_of: date) -> Row:
    missing, inaccurate = gaps(person)
    known = facts(
        person,
        tuple([m["item"] for m in missing]),
        tuple(dict.fromkeys([i["item"] for i in inaccurate])),
    )
    result = _outcome(known, as_of)
    document = None
    if person.document is not None:
        document = _dumps({"type": person.document[0], "number": person.document[1]})
    registration = result.registration
    return (
        f"{seed:05d}{person.index:09d}",
        seed,
        person.index,
        person.number,
        document,
        person.name,
        "1" if person.male else "2",
        person.birth,
        person.region,
        person.local,
        person.situation,
        result.deceased,
        result.in_scope,
        _json_of(_STATUSES, tuple(result.statuses.values()), _statuses_json),
        _json_of(_FLAGS, result.flags, _flags_json),
        bool(result.survey_reasons),
        _json_of(_REASONS, result.survey_reasons, _dumps),
        None if registration is None else registration.value,
        _dumps(missing) if missing else "[]",
        _dumps(inaccurate) if inaccurate else "[]",
        _json_of(_TRAITS, tuple(person.traits), _dumps),
        _dumps(facts_to_json(known)),
        as_of,
    )


_OUTCOMES: dict[tuple[Any, ...], Outcome] = {}


def _outcome(known: Facts, as_of: date) -> Outcome:
    """expected.outcome, memoised on what it depends on: it reads the birth date only through
    "under 16" on `as_of`, compares regions only with each other, and counts benefits without
    their region. Most people share their circumstances with thousands of others, so this
    saves most of the rule evaluations (tests check it against expected.outcome)."""
    regions: dict[str, int] = {}
    key = (
        as_of,
        age(known.birth_date, as_of) < 16,
        known[1:7],  # household_registered … studying
        tuple(
            [
                (
                    e.insurance,
                    e.scheme,
                    regions.setdefault(e.region, len(regions)),
                    e.state,
                    e.by_unit,
                )
                for e in known.enrolments
            ]
        ),
        tuple(
            [
                (
                    c.insurance,
                    c.scope,
                    regions.setdefault(c.region, len(regions)),
                    c.state,
                    c.receiving_benefit,
                )
                for c in known.cross_region
            ]
        ),
        tuple([(b.insurance, b.paying) for b in known.benefits]),
        known.missing,
        known.inaccurate,
        known.identity_conflict,
        known.permit_valid_until is not None and known.permit_valid_until >= as_of,
    )
    result = _OUTCOMES.get(key)
    if result is None:
        if len(_OUTCOMES) > 200_000:
            _OUTCOMES.clear()
        result = _OUTCOMES[key] = outcome(known, as_of)
    return result


# The small JSON values repeat: encode each distinct one once per process.
_STATUSES: dict[tuple[StatusCode | None, ...], str] = {}
_FLAGS: dict[tuple[tuple[FlagType, Insurance], ...], str] = {}
_REASONS: dict[tuple[SurveyReason, ...], str] = {}
_TRAITS: dict[tuple[str, ...], str] = {}


def _json_of(cache: dict[Any, str], key: Any, encode: Callable[[Any], str]) -> str:
    text = cache.get(key)
    if text is None:
        text = cache[key] = encode(key)
    return text


def _statuses_json(codes: tuple[StatusCode | None, ...]) -> str:
    return _dumps(dict(zip(INSURANCES, codes, strict=True)))


def _flags_json(flags: tuple[tuple[FlagType, Insurance], ...]) -> str:
    return _dumps([{"type": flag, "insurance": insurance} for flag, insurance in flags])
